"""Opening the database, schema creation/upgrade, and the write lock every state change takes."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator

from peewee import Database, PostgresqlDatabase, SqliteDatabase
from playhouse.db_url import connect

from hotdesk.models import (
    ALL_MODELS,
    Heartbeat,
    SchemaVersion,
    Tenant,
    database_proxy,
    utcnow,
)

log = logging.getLogger(__name__)

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    # A locked database waits this long before "database is locked" reaches the caller.
    "busy_timeout": 3000,
    "synchronous": "normal",
}


def open_database(url: str) -> Database:
    """Connect to ``sqlite:///file`` or ``postgresql://…`` and bind the models to it."""
    if url.startswith("sqlite"):
        db = connect(url, pragmas=SQLITE_PRAGMAS)
    elif url.startswith(("postgresql", "postgres")):
        db = connect(url.replace("postgresql://", "postgres://", 1))
    else:
        raise ValueError(f"unsupported database URL {url!r}: use sqlite:///FILE or postgresql://…")
    database_proxy.initialize(db)
    return db


def is_sqlite(db: Database) -> bool:
    return isinstance(db, SqliteDatabase)


@contextlib.contextmanager
def write_transaction(db: Database) -> Iterator[None]:
    """A transaction that serialises with every other state change.

    SQLite: BEGIN IMMEDIATE takes the write lock up front, so two logins cannot both
    read "no session" and then both write. PostgreSQL: callers lock the rows they
    decide on with SELECT … FOR UPDATE inside this transaction (see service.py).
    """
    if isinstance(db, SqliteDatabase):
        with db.atomic("IMMEDIATE"):
            yield
    else:
        with db.atomic():
            yield


def for_update(query):  # type: ignore[no-untyped-def]
    """``SELECT … FOR UPDATE`` where the database supports it (PostgreSQL)."""
    db = database_proxy.obj
    return query.for_update() if isinstance(db, PostgresqlDatabase) else query


def _v1_create_tables(db: Database) -> None:
    db.create_tables(ALL_MODELS, safe=True)


def _v2_create_heartbeat(db: Database) -> None:
    """Heartbeat table: connection/process state shared across processes and nodes."""
    db.create_tables([Heartbeat], safe=True)


# Each entry upgrades the schema by one version. Append, never edit a shipped one.
MIGRATIONS: list[Callable[[Database], None]] = [_v1_create_tables, _v2_create_heartbeat]


def schema_version(db: Database) -> int:
    if not db.table_exists(SchemaVersion._meta.table_name):
        return 0
    row = SchemaVersion.select().order_by(SchemaVersion.version.desc()).first()
    return row.version if row else 0


def upgrade(db: Database, default_domain: str = "default") -> int:
    """Bring the schema to the newest version and make sure a default tenant exists."""
    current = schema_version(db)
    for number, step in enumerate(MIGRATIONS, start=1):
        if number <= current:
            continue
        with db.atomic():
            step(db)
            SchemaVersion.create(version=number, applied_at=utcnow())
        log.info("database schema upgraded to version %d", number)
        current = number
    ensure_default_tenant(default_domain)
    return current


def ensure_default_tenant(domain: str) -> Tenant:
    tenant = Tenant.get_or_none(Tenant.is_default == True)  # noqa: E712
    if tenant is None:
        tenant = Tenant.create(name="Default", sip_domain=domain, is_default=True)
    return tenant
