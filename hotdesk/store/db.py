"""Opening the database, schema creation/upgrade, and the write lock every state change takes."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

from peewee import (
    BooleanField,
    CharField,
    Database,
    DateTimeField,
    Field,
    InterfaceError,
    OperationalError,
    PostgresqlDatabase,
    SqliteDatabase,
)
from playhouse.db_url import connect, parse
from playhouse.pool import PooledDatabase, PooledPostgresqlDatabase

from hotdesk.store.models import (
    ALL_MODELS,
    AdminWebSession,
    AuditEvent,
    Device,
    Heartbeat,
    ImportJob,
    ImportRow,
    OutboxNotify,
    Registration,
    RegistrationFailure,
    SchemaVersion,
    SigninAttempt,
    SwitchSync,
    Tenant,
    User,
    process_database,
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


class RecoveringPostgresqlDatabase(PooledPostgresqlDatabase):
    """A pool of PostgreSQL connections whose dead connections are replaced between
    transactions.

    The pool bounds the connections one process opens (``[database] max_connections``);
    a thread gives its connection back with ``close()`` when its database step ends, and
    a thread that finds the pool empty waits for one (``connection_wait_seconds``).
    When the server restarts or the backend is terminated,
    psycopg only notices on the next statement; without this, every later statement
    on that thread would fail ("connection already closed") until the process
    restarts. A statement (or BEGIN) that fails outside a transaction on a connection
    that turns out dead is retried once on a fresh connection. Never inside a
    transaction: a silent reconnect there would lose its writes, so that caller gets
    the error (and hears the error prompt) and the transaction is rolled back.
    """

    def execute_sql(self, sql, params=None):  # type: ignore[no-untyped-def]
        return self._recovering(super().execute_sql, sql, params)

    def begin(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return self._recovering(super().begin, *args, **kwargs)

    def _recovering(self, run, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not self.is_closed() and not self.in_transaction() and not self._usable():
            self._drop("database connection found dead")
        try:
            return run(*args, **kwargs)
        except (OperationalError, InterfaceError) as exc:
            if self.in_transaction() or self._usable():
                raise
            self._drop(f"database connection lost ({str(exc).strip()})")
            return run(*args, **kwargs)

    def _is_closed(self, conn):  # type: ignore[no-untyped-def]
        """Checking a connection out of the pool: closed as far as the client knows.

        peewee asks the server (``SELECT 1``), a round trip for every database step of
        every call; a connection that died in the pool is found by its next statement
        and replaced there instead (:meth:`_recovering`, outside a transaction).
        """
        adapter = self._adapter
        status = adapter.txn_status(conn)
        if conn.closed or status == adapter.txn_unknown:
            return True
        if status != adapter.txn_idle:
            return bool(super()._is_closed(conn))  # rolls the leftover back
        return False

    def _drop(self, why: str) -> None:
        log.warning("%s; reconnecting", why)
        try:
            self.manual_close()  # really closed, never handed back to the pool
        except Exception:  # noqa: BLE001 - closing a dead connection may fail
            self._state.reset()

    def _usable(self) -> bool:
        if self.is_closed():
            return True  # nothing to replace: the next statement connects
        try:
            conn = self._state.conn
            return not getattr(conn, "closed", 0) and self.is_connection_usable()
        except Exception:  # noqa: BLE001 - a broken connection may fail to say so
            return False


def open_database(url: str, max_connections: int = 20, wait_seconds: int = 10) -> Database:
    """Connect to ``sqlite:///file`` or ``postgresql://…`` and bind the models to it.

    PostgreSQL connections come from a pool of at most ``max_connections``; a thread
    that finds none free waits up to ``wait_seconds``. SQLite needs no pool (no server
    with a connection limit).
    """
    if url.startswith("sqlite"):
        db = connect(url, pragmas=SQLITE_PRAGMAS)
    elif url.startswith(("postgresql", "postgres")):
        params = parse(url)
        if not params.get("database"):
            raise ValueError("the PostgreSQL database URL names no database")
        db = RecoveringPostgresqlDatabase(max_connections=max_connections,
                                          timeout=max(wait_seconds, 1), **params)
    else:
        raise ValueError(f"unsupported database URL {url!r}: use sqlite:///FILE or postgresql://…")
    process_database.initialize(db)
    return db


def current_database() -> Database:
    """The database the models are bound to (:data:`hotdesk.store.models.process_database`)."""
    db = process_database.obj
    if db is None:
        raise RuntimeError("no database is open: hotdesk.store.db.open_database() binds one")
    return db


def close_quietly(db: Database) -> None:
    """Close this thread's connection, if any, and never raise.

    peewee keeps one connection per thread: a loop or call thread calls this when it
    ends (so connections do not outlive their threads) and after a database error (a
    dead connection may fail to close; the next statement opens a fresh one).
    """
    try:
        if not db.is_closed():
            db.close()
    except Exception:  # noqa: BLE001 - a broken connection may fail to close; that is fine
        log.debug("closing the database connection failed", exc_info=True)


def close_before_fork(db: Database) -> None:
    """Close every connection this process holds, pooled ones included, before forking:
    a connection handed to two processes carries both their statements on one socket
    and one of them waits for an answer that went to the other."""
    close_quietly(db)
    if isinstance(db, PooledPostgresqlDatabase):
        db.close_all()


def is_pooled(db: Database) -> bool:
    """Connections come from a pool: giving one back after each step costs nothing."""
    return isinstance(db, PooledDatabase)


class DbSlots:
    """At most ``slots`` threads doing database work at once, each giving its connection
    back when its step ends.

    Call threads spend nearly all their time waiting for the caller (prompts, PIN
    digits); holding a connection through that would need one per call in progress.
    With this around each step, a process holds at most ``slots`` connections for its
    calls however many calls are in progress.
    """

    def __init__(self, db: Database, slots: int) -> None:
        self.db = db
        self.semaphore = threading.BoundedSemaphore(max(slots, 1))

    def __enter__(self) -> None:
        self.semaphore.acquire()

    def __exit__(self, *exc: object) -> None:
        try:
            close_quietly(self.db)
        finally:
            self.semaphore.release()


class DbExecutor(ThreadPoolExecutor):
    """Threads for blocking database steps; on a pooled database each step gives its
    connection back when it ends, so the pool, not the thread count, bounds connections.
    On SQLite each thread keeps its connection (and page cache) for its whole life."""

    def __init__(self, db: Database, threads: int, name: str) -> None:
        super().__init__(max_workers=max(threads, 1), thread_name_prefix=name)
        self.db = db
        self.release = is_pooled(db)

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        if not self.release:
            return super().submit(fn, *args, **kwargs)
        return super().submit(self._released, fn, *args, **kwargs)

    def _released(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return fn(*args, **kwargs)
        finally:
            close_quietly(self.db)


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
    """``SELECT … FOR NO KEY UPDATE`` where the database supports it (PostgreSQL).

    NO KEY: a plain FOR UPDATE also blocks the KEY SHARE lock every INSERT of a row
    that references the locked one takes (an audit row naming a user another login
    holds), which turns two logins into a deadlock. Between lockers it is as exclusive.
    """
    db = current_database()
    if isinstance(db, PostgresqlDatabase):
        return query.for_update("FOR NO KEY UPDATE")
    return query


def add_column_if_missing(db: Database, table: str, column: str, field: Field) -> None:
    """An upgrade step's new column; a database made by this version has it already.

    Always added as a nullable column (a plain ``ALTER TABLE … ADD COLUMN``): for a NOT
    NULL column peewee rebuilds the table on SQLite, and with foreign keys on, dropping
    the old table deletes every row that references it (ON DELETE CASCADE). The
    existing rows then get the field's default, so they read as new rows do.
    """
    from playhouse.migrate import SchemaMigrator, migrate

    if column in {c.name for c in db.get_columns(table)}:
        return
    field.null = True
    migrate(SchemaMigrator.from_database(db).add_column(table, column, field))
    if field.default is not None and not callable(field.default):
        db.execute_sql(f'UPDATE "{table}" SET "{column}" = {db.param} '
                       f'WHERE "{column}" IS NULL', [field.db_value(field.default)])


def _v1_create_tables(db: Database) -> None:
    # A new database gets today's tables; later steps therefore add columns only
    # where they are missing (see add_column_if_missing).
    db.create_tables(ALL_MODELS, safe=True)


def _v2_create_heartbeat(db: Database) -> None:
    """Heartbeat table: connection/process state shared across processes and nodes."""
    db.create_tables([Heartbeat], safe=True)


def _v3_tenant_pin_source(db: Database) -> None:
    """Tenant.pin_source: which PIN callers key (empty = ``[policy] pin_source``, whose
    default became ``switch``). Tenants that already have users with hotdesk PINs keep
    ``hotdesk``, so an upgraded install behaves as before without a config change."""
    add_column_if_missing(db, "tenant", "pin_source", CharField(default=""))
    with_pins = User.select(User.tenant).where(User.pin_hash != "").distinct()
    Tenant.update(pin_source="hotdesk").where(Tenant.id.in_(with_pins)).execute()


def _v4_switch_accounts(db: Database) -> None:
    """Idle accounts created on the switch, the account fingerprint per phone, and the
    durable "switch sync wanted" marker. Existing phones keep their stored passwords
    (idle_managed NULL/false: hotdesk never rewrites an account it did not create)."""
    table = Device._meta.table_name
    add_column_if_missing(db, table, "idle_managed", BooleanField(default=False))
    add_column_if_missing(db, table, "account_fingerprint", CharField(default=""))
    db.create_tables([SwitchSync], safe=True)


def _v5_create_registrations(db: Database) -> None:
    """Registrations the switch reports, and the newest refused one per address."""
    db.create_tables([Registration, RegistrationFailure], safe=True)


def _v6_phone_clock_transport(db: Database) -> None:
    """Time zone per tenant and user, SIP transport per phone, the DST job's last offset."""
    add_column_if_missing(db, Tenant._meta.table_name, "timezone", CharField(default=""))
    add_column_if_missing(db, User._meta.table_name, "timezone", CharField(default=""))
    for column in ("sip_transport", "clock_state"):
        add_column_if_missing(db, Device._meta.table_name, column, CharField(default=""))


def _v7_outbox_gave_up(db: Database) -> None:
    """outbox_notify.gave_up: reconciliation records on the row, not by searching audit
    JSON, that it gave up on a config version; earlier give-ups are carried over.
    (NULL on rows older than the column reads as "not given up".)"""
    import json

    add_column_if_missing(db, "outbox_notify", "gave_up", BooleanField(default=False))
    flagged = (AuditEvent.select(AuditEvent.device, AuditEvent.detail)
               .where((AuditEvent.action == "provisioning_pending")
                      & AuditEvent.device.is_null(False)))
    for event in flagged:
        try:
            version = int(json.loads(event.detail or "{}").get("config_version"))
        except (TypeError, ValueError):
            continue
        newest = (OutboxNotify.select(OutboxNotify.id)
                  .where((OutboxNotify.device == event.device_id)
                         & (OutboxNotify.config_version == version))
                  .order_by(OutboxNotify.id.desc()).first())
        if newest is not None:
            OutboxNotify.update(gave_up=True).where(OutboxNotify.id == newest.id).execute()


def _v8_import_jobs(db: Database) -> None:
    """Durable user imports: a web restart resumes them instead of losing count."""
    db.create_tables([ImportJob, ImportRow], safe=True)


def _v9_emergency(db: Database) -> None:
    """Desk/tenant emergency locations and the outbox of switch-store writes."""
    from hotdesk.emergency.models import EMERGENCY_MODELS

    db.create_tables(EMERGENCY_MODELS, safe=True)


def _v10_admin_sessions_tokens_pnp(db: Database) -> None:
    """Server-side admin sessions, the shared sign-in throttle, token expiry, disabled
    admins and the PnP answer window. The columns arrive nullable (see
    add_column_if_missing); code treats NULL as "not disabled" / "none"."""
    db.create_tables([AdminWebSession, SigninAttempt], safe=True)
    add_column_if_missing(db, "admin", "disabled", BooleanField(default=False))
    add_column_if_missing(db, "api_token", "expires_at", DateTimeField(null=True))
    add_column_if_missing(db, "device", "pnp_armed_until", DateTimeField(null=True))


# Indexes behind the admin lists (hotdesk.admin.lists): name -> table, columns, WHERE.
# The models declare the same names, so a new database has them from the first step.
LIST_INDEXES = {
    "device_tenant_name": ("device", "tenant_id, display_name", ""),
    "user_tenant_name": ("user", "tenant_id, display_name", ""),
    "session_active_tenant_started": ("session", "tenant_id, started_at",
                                      "ended_at IS NULL"),
    "audit_event_tenant_at_id": ("audit_event", "tenant_id, at, id", ""),
    "audit_event_at_id": ("audit_event", "at, id", ""),
    "login_attempt_device_at": ("login_attempt", "device_id, at", ""),
}


def _v11_list_indexes(db: Database) -> None:
    """Indexes for the paged, sorted, filtered admin lists of a large fleet: names per
    tenant, active sessions by start, audit rows and calls by time per tenant/phone.
    Only adds indexes: no row changes, nothing to carry over."""
    for name, (table, columns, where) in LIST_INDEXES.items():
        cols = ", ".join(f'"{c.strip()}"' for c in columns.split(","))
        db.execute_sql(f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ({cols})'
                       + (f" WHERE {where}" if where else ""))


# Partial indexes for the worker's per-tick reads (same SQL on SQLite and PostgreSQL):
# only the rows a tick looks for are indexed, however long the history grows.
WORKER_INDEXES = {
    # reconcile: the phones that lack their current config
    "device_unfetched": 'ON "device" ("id") WHERE "fetched_version" < "config_version"',
    # daily logout: active sessions of a tenant started before the cut-off use
    # "session_active_tenant_started" of LIST_INDEXES (schema step 11)
    # max login time: active sessions past their expiry
    "session_active_expires": ('ON "session" ("expires_at") '
                               'WHERE "ended_at" IS NULL AND "expires_at" IS NOT NULL'),
}


def _v12_worker_indexes(db: Database) -> None:
    """Indexes that keep a worker tick's reads proportional to what it acts on, not to
    the fleet or the session history (see :data:`WORKER_INDEXES`)."""
    for name, target in WORKER_INDEXES.items():
        db.execute_sql(f'CREATE INDEX IF NOT EXISTS "{name}" {target}')


def _v13_push_campaigns(db: Database) -> None:
    """Paced check-sync pushes: campaigns, their phones, the shared pacing clock, and the
    outbox's mark of a pushed row (NULL on every existing row: an ordinary NOTIFY)."""
    from hotdesk.notify.push_models import PUSH_MODELS

    db.create_tables(PUSH_MODELS, safe=True)
    add_column_if_missing(db, "outbox_notify", "paced", BooleanField(null=True))


# Each entry upgrades the schema by one version. Append, never edit a shipped one.
MIGRATIONS: list[Callable[[Database], None]] = [_v1_create_tables, _v2_create_heartbeat,
                                                _v3_tenant_pin_source, _v4_switch_accounts,
                                                _v5_create_registrations, _v6_phone_clock_transport,
                                                _v7_outbox_gave_up, _v8_import_jobs,
                                                _v9_emergency,
                                                _v10_admin_sessions_tokens_pnp,
                                                _v11_list_indexes,
                                                _v12_worker_indexes,
                                                _v13_push_campaigns]


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
