"""Upgrading a database made by the previous schema version (before the admin lists'
indexes) adds them and keeps every row, on SQLite and PostgreSQL; a new database has
the same indexes from its first step."""

from __future__ import annotations

from hotdesk.admin import lists
from hotdesk.admin.listing import ListParams
from hotdesk.admin.reports import AuditFilter
from hotdesk.calls.service import CallContext
from hotdesk.store.audit import record
from hotdesk.store.db import LIST_INDEXES, MIGRATIONS, schema_version, upgrade
from hotdesk.store.models import AuditEvent, Device, SchemaVersion, Session, User
from tests.conftest import make_device

STEP = next(n for n, step in enumerate(MIGRATIONS, start=1)
            if step.__name__.endswith("_list_indexes"))


def index_names(db, table: str) -> set[str]:  # type: ignore[no-untyped-def]
    return {index.name for index in db.get_indexes(table)}


def to_previous_version(db) -> None:  # type: ignore[no-untyped-def]
    """Drop what the step adds, as an install of the version before it never had it."""
    for name in LIST_INDEXES:
        db.execute_sql(f'DROP INDEX IF EXISTS "{name}"')
    SchemaVersion.delete().where(SchemaVersion.version >= STEP).execute()


def test_a_new_database_has_the_list_indexes(runtime):
    for name, (table, _columns, _where) in LIST_INDEXES.items():
        assert name in index_names(runtime.db, table)


def test_upgrade_from_the_previous_version_adds_the_indexes_and_keeps_rows(runtime, alice):
    db = runtime.db
    device = make_device(runtime)
    ctx = CallContext(switch="asterisk", call_id="m1", endpoint=device.idle_extension)
    assert runtime.service.login(device.id, "101", "1234", ctx).outcome.value == "ok"
    record("user_changed", tenant=alice.tenant_id, user=alice)
    before = {m.__name__: m.select().count() for m in (Device, User, Session, AuditEvent)}
    to_previous_version(db)
    assert schema_version(db) == STEP - 1
    assert not set(LIST_INDEXES) & index_names(db, "audit_event")

    assert upgrade(db) == len(MIGRATIONS)
    for name, (table, _columns, _where) in LIST_INDEXES.items():
        assert name in index_names(db, table), name
    assert {m.__name__: m.select().count() for m in (Device, User, Session, AuditEvent)} \
        == before
    # The lists read the upgraded database as before.
    params = ListParams(per_page=10, sort="since", descending=True)
    assert [s.user.extension for s in lists.sessions(None, params).items] == ["101"]
    events = lists.audit(None, AuditFilter(user="101"),
                         ListParams(per_page=10, sort="at", descending=True))
    assert events.total >= 2 and all(e.user_id == alice.id for e in events.items)
    assert upgrade(db) == len(MIGRATIONS)  # idempotent
