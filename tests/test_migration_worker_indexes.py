"""The worker's partial indexes arrive by ``hotdesk db upgrade`` from the previous schema
version, keep every row, and are what the tick's reads use (SQLite here; PostgreSQL when
HOTDESK_TEST_DATABASE_URL is set)."""

from __future__ import annotations

from datetime import datetime, timedelta

from hotdesk.calls.service import CallContext, Outcome
from hotdesk.ops import worker
from hotdesk.runtime import start
from hotdesk.store.db import (
    MIGRATIONS,
    WORKER_INDEXES,
    _v12_worker_indexes,
    is_sqlite,
    schema_version,
    upgrade,
)
from hotdesk.store.models import Device, SchemaVersion, Session
from tests.conftest import make_device

PREVIOUS = MIGRATIONS.index(_v12_worker_indexes)  # the schema version before the step


def indexes(db) -> set[str]:  # type: ignore[no-untyped-def]
    return {i.name for table in ("device", "session") for i in db.get_indexes(table)}


def test_upgrade_adds_the_indexes_keeps_rows_and_the_worker_uses_them(config, alice):
    rt = start(config, migrate=True)
    desk = make_device(rt)
    ctx = CallContext(switch="asterisk", call_id="m1", endpoint="8001", source="192.0.2.1:5060")
    assert rt.service.login(desk.id, "101", "1234", ctx).outcome is Outcome.LOGGED_IN
    # The previous schema: no such indexes.
    for name in WORKER_INDEXES:
        rt.db.execute_sql(f'DROP INDEX "{name}"')
    SchemaVersion.delete().where(SchemaVersion.version > PREVIOUS).execute()
    assert schema_version(rt.db) == PREVIOUS and not set(WORKER_INDEXES) & indexes(rt.db)
    assert upgrade(rt.db) == len(MIGRATIONS)
    assert set(WORKER_INDEXES) <= indexes(rt.db)
    assert Device.select().count() == 1 and Session.select().count() == 1
    if is_sqlite(rt.db):
        plan = rt.db.execute_sql('EXPLAIN QUERY PLAN SELECT "id" FROM "session" WHERE '
                                 '"tenant_id" = 1 AND "ended_at" IS NULL AND "started_at" < ?',
                                 [datetime(2030, 1, 1)]).fetchall()
        assert "session_active_tenant_started" in str(plan)
    # The sessions they index behave as before: a session past its expiry ends.
    Session.update(expires_at=datetime.utcnow() - timedelta(minutes=1)).execute()
    assert worker.expire_sessions(rt.service) == 1
    _v12_worker_indexes(rt.db)  # idempotent on a database that has them
    rt.db.close()
