"""Reconciliation records that it gave up on a config version on the outbox row
(``outbox_notify.gave_up``), not by searching audit JSON; the migration carries the
give-ups recorded before over."""

from __future__ import annotations

from datetime import datetime, timedelta

from playhouse.migrate import SchemaMigrator, migrate

from hotdesk.calls.service import HotdeskService
from hotdesk.notify import reconcile
from hotdesk.store import audit
from hotdesk.store.db import _v7_outbox_gave_up
from hotdesk.store.models import AuditEvent, Device, OutboxNotify
from tests.test_worker import Clock, ctx, reconcile_config, send_all


def exhaust(runtime, desk) -> tuple[object, datetime]:
    """Log in, then let every allowed NOTIFY for the new version go unanswered."""
    cfg = reconcile_config(runtime.config, max_requeues=0)
    t0 = datetime(2024, 3, 5, 9, 0)
    HotdeskService(runtime.db, cfg, clock=Clock(t0)).login(desk.id, "101", "1234", ctx())
    send_all(t0, cfg)
    return cfg, t0 + timedelta(days=1)


def test_give_up_is_marked_on_the_newest_outbox_row_once(runtime, alice, desk):
    cfg, later = exhaust(runtime, desk)
    assert reconcile.reconcile(cfg, later).flagged == 1
    device = Device.get_by_id(desk.id)
    rows = list(OutboxNotify.select().where(OutboxNotify.device == device)
                .order_by(OutboxNotify.id))
    assert [r.gave_up for r in rows] == [False] * (len(rows) - 1) + [True]
    assert rows[-1].config_version == device.config_version
    # Pruning the audit trail (retention) must not make the phone flagged again.
    AuditEvent.delete().execute()
    assert reconcile.reconcile(cfg, later + timedelta(days=1)).flagged == 0


def test_migration_adds_the_column_and_carries_old_give_ups_over(runtime, alice, desk):
    cfg, later = exhaust(runtime, desk)
    device = Device.get_by_id(desk.id)
    # The previous schema: no column, the give-up only in the audit trail.
    migrate(SchemaMigrator.from_database(runtime.db).drop_column("outbox_notify", "gave_up"))
    audit.record("provisioning_pending", tenant=device.tenant_id, device=device,
                 config_version=device.config_version, fetched_version=0)
    _v7_outbox_gave_up(runtime.db)
    assert "gave_up" in {c.name for c in runtime.db.get_columns("outbox_notify")}
    newest = (OutboxNotify.select().where(OutboxNotify.device == device)
              .order_by(OutboxNotify.id.desc()).first())
    assert newest.gave_up and OutboxNotify.select().where(OutboxNotify.gave_up).count() == 1
    assert reconcile.reconcile(cfg, later).flagged == 0  # not flagged a second time
    _v7_outbox_gave_up(runtime.db)  # idempotent on a database that has the column
