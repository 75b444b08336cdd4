"""Paced check-sync pushes: the release step honours the rate on a controlled clock, is
exact across concurrent release steps and drainers, survives a restart, cancels, stays
inside the admin's tenant scope and refuses bad input with a message."""

from __future__ import annotations

import dataclasses
import threading
from datetime import datetime, timedelta

import pytest
from peewee import OperationalError
from playhouse.migrate import SchemaMigrator, migrate

from hotdesk.admin import usecases
from hotdesk.admin.errors import Conflict, InventoryError, NotFound
from hotdesk.admin.inventory import default_tenant
from hotdesk.notify import campaigns, outbox, pacing, push_selection
from hotdesk.notify.push_models import PushCampaign, PushPacer, PushTarget
from hotdesk.runtime import start
from hotdesk.store.db import MIGRATIONS, is_sqlite, schema_version, upgrade
from hotdesk.store.models import AuditEvent, Device, OutboxNotify, SchemaVersion, Tenant, utcnow

T0 = datetime(2026, 12, 1, 9, 0, 0)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def add_phones(n: int, tenant: Tenant | None = None, first: int = 1) -> list[int]:
    """``n`` phones written directly (the use case would queue a NOTIFY for each)."""
    tenant = tenant or default_tenant()
    rows = [{"tenant": tenant.id, "mac": f"0015{tenant.id:02x}{i:06x}",
             "idle_extension": str(80000 + i), "idle_sip_username": str(80000 + i),
             "idle_sip_password": "x", "display_name": f"Desk {i}",
             "fetched_version": 1}  # has its config: the worker's reconciliation leaves it
            for i in range(first, first + n)]
    Device.insert_many(rows).execute()
    return [d.id for d in Device.select(Device.id).where(
        Device.mac.in_([r["mac"] for r in rows])).order_by(Device.id)]


def paced(config, rate: float):  # type: ignore[no-untyped-def]
    return dataclasses.replace(config, notify=dataclasses.replace(config.notify, push_rate=rate))


def send_all_pending(now: datetime | None = None) -> int:
    return OutboxNotify.update(status="sent", sent_at=now or T0).where(
        OutboxNotify.status == "pending").execute()


def campaign_rows(campaign_id: int) -> list[OutboxNotify]:
    ids = [t.outbox_id for t in PushTarget.select().where(
        (PushTarget.campaign == campaign_id) & PushTarget.outbox_id.is_null(False))]
    return list(OutboxNotify.select().where(OutboxNotify.id.in_(ids)))


def test_release_follows_push_rate_on_a_controlled_clock(runtime):
    config = paced(runtime.config, 10.0)
    phones = add_phones(50)
    c = campaigns.start(config, "all", phones, actor="admin:root", now=T0)
    assert OutboxNotify.select().count() == 0  # nothing is queued at start
    assert pacing.release(config, now=T0).released == 0
    assert pacing.release(config, now=at(0.5)).released == 5
    assert pacing.release(config, now=at(0.5)).released == 0  # same instant: no more
    assert pacing.release(config, now=at(0.75)).released == 2  # 2.5 owed, the half carries
    assert pacing.release(config, now=at(1.0)).released == 3
    # A pause (no worker for a minute) never becomes a burst: one second's worth at most.
    assert pacing.release(config, now=at(61.0)).released == 10
    send_all_pending()
    t, released = 61.0, 20
    while released < 50:
        t += 0.25
        released += pacing.release(config, now=at(t)).released
        send_all_pending()
    assert t == pytest.approx(64.0)  # the remaining 30 phones took 3 s at 10/s
    assert pacing.release(config, now=at(t + 1)).finished == [c.id]
    p = campaigns.progress(PushCampaign.get_by_id(c.id))
    assert (p.state, p.total, p.sent, p.waiting, p.queued, p.percent) == ("done", 50, 50, 0, 0,
                                                                          100)
    assert sorted(r.device_id for r in campaign_rows(c.id)) == phones


def test_a_campaign_rate_below_the_ceiling_and_two_campaigns_share_the_ceiling(runtime):
    config = paced(runtime.config, 10.0)
    slow = campaigns.start(config, "selected", add_phones(20), actor="cli", rate=2.0, now=T0)
    assert pacing.release(config, now=at(1.0)).released == 2
    fast = campaigns.start(config, "selected", add_phones(40, first=100), actor="cli", now=at(1))
    result = pacing.release(config, now=at(2.0))
    # The ceiling (10/s) is shared: the slow one takes its 2, the other the remaining 8.
    assert result.released == 10
    counts = {c: PushTarget.select().where((PushTarget.campaign == c)
                                           & (PushTarget.state == "released")).count()
              for c in (slow.id, fast.id)}
    assert counts == {slow.id: 4, fast.id: 8}


def test_a_clock_set_back_does_not_stall_the_push(runtime):
    config = paced(runtime.config, 10.0)
    campaigns.start(config, "all", add_phones(30), actor="cli", now=T0)
    assert pacing.release(config, now=at(3600)).released == 10  # the clock ran an hour ahead
    assert pacing.release(config, now=at(1)).released == 0  # then was set back
    assert pacing.release(config, now=at(1.5)).released == 5  # and the push goes on


def test_fair_shares_split_the_budget():
    assert pacing.fair_shares({1: 3, 2: 100}, 10) == {1: 3, 2: 7}
    assert pacing.fair_shares({1: 100, 2: 100, 3: 0}, 10) == {1: 5, 2: 5, 3: 0}
    assert pacing.fair_shares({1: 4, 2: 4}, 100) == {1: 4, 2: 4}
    assert sum(pacing.fair_shares({1: 9, 2: 9, 3: 9}, 10).values()) == 10


def test_phones_still_queued_hold_the_campaign_so_a_reconnect_is_no_burst(runtime):
    config = paced(runtime.config, 10.0)  # at most 10/s x 2 s = 20 phones queued, unsent
    campaigns.start(config, "all", add_phones(60), actor="cli", now=T0)
    released = sum(pacing.release(config, now=at(s)).released for s in range(1, 30))
    assert released == 20  # the switch is down: nothing was sent, so the pacer waits
    result = pacing.release(config, now=at(40))
    assert (result.released, result.held) == (0, 1)
    send_all_pending()
    assert pacing.release(config, now=at(41)).released == 10


def test_ordinary_notifies_are_not_paced_and_go_first(runtime, desk):
    config = paced(runtime.config, 10.0)
    campaigns.start(config, "all", add_phones(500), actor="cli", now=T0)
    assert pacing.release(config, now=at(1)).released == 10
    row = usecases.queue_checksync(runtime, desk, actor="admin:root")
    # The admin's NOTIFY is due at once, queued after the ten pushed phones, and still
    # claimed (and sent) first: a push never delays it. The other 490 are not queued yet.
    claimed = outbox.claim_due(3, "me", now=row.next_attempt_at)
    assert [r.id for r in claimed][0] == row.id and len(claimed) == 3
    assert [bool(r.paced) for r in claimed] == [False, True, True]
    assert OutboxNotify.select().count() == 11


def test_concurrent_release_steps_release_exactly_the_budget(runtime):
    config = paced(runtime.config, 20.0)
    campaigns.start(config, "all", add_phones(200), actor="cli", now=T0)
    barrier = threading.Barrier(4)
    results: list[int] = []
    errors: list[BaseException] = []

    def step() -> None:
        try:
            barrier.wait()
            results.append(pacing.release(config, now=at(1.0)).released)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            runtime.db.close()

    threads = [threading.Thread(target=step) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and sum(results) == 20 and sorted(results)[-1] == 20
    assert OutboxNotify.select().count() == 20


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent: list[str] = []

    def send(self, target: outbox.NotifyTarget) -> None:
        with self.lock:
            self.sent.append(target.endpoint)


def test_several_pacers_and_drainers_push_every_phone_exactly_once(runtime):
    config = paced(runtime.config, 400.0)
    phones = add_phones(300)
    c = campaigns.start(config, "all", phones, actor="cli")
    recorder = Recorder()
    stop = threading.Event()
    errors: list[BaseException] = []

    def guarded(fn):  # type: ignore[no-untyped-def]
        def run() -> None:
            try:
                while not stop.is_set():
                    try:
                        fn()
                    except OperationalError:  # SQLite busy: the real loops retry too
                        runtime.db.close()
                    stop.wait(0.005)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                runtime.db.close()
        return run

    workers = [guarded(lambda: pacing.release(config)) for _ in range(2)]
    workers += [guarded(lambda n=n: outbox.drain_once(recorder, config.notify, f"d{n}"))
                for n in range(2)]
    threads = [threading.Thread(target=w) for w in workers]
    for t in threads:
        t.start()
    deadline = datetime.now() + timedelta(seconds=60)
    while PushCampaign.get_by_id(c.id).state == "running" and datetime.now() < deadline:
        threading.Event().wait(0.05)
    stop.set()
    for t in threads:
        t.join(30)
    assert not errors
    expected = sorted(Device.get_by_id(i).idle_sip_username for i in phones)
    assert sorted(recorder.sent) == expected
    assert PushCampaign.get_by_id(c.id).state == "done"


def test_reopening_the_database_carries_on_where_it_stopped(config):
    rt = start(paced(config, 10.0), migrate=True)
    phones = add_phones(30)
    c = campaigns.start(rt.config, "all", phones, actor="cli", now=T0)
    assert pacing.release(rt.config, now=at(1)).released == 10
    rt.db.close()

    rt = start(paced(config, 10.0))
    t = 1.0
    while PushCampaign.get_by_id(c.id).state == "running":
        t += 0.5
        pacing.release(rt.config, now=at(t))
        send_all_pending()
    rows = campaign_rows(c.id)
    assert sorted(r.device_id for r in rows) == phones  # none twice, none skipped
    assert OutboxNotify.select().count() == 30
    rt.db.close()


def test_cancel_stops_releases_and_is_audited(runtime):
    config = paced(runtime.config, 10.0)
    c = campaigns.start(config, "all", add_phones(30), actor="admin:root", now=T0)
    pacing.release(config, now=at(1))
    p = campaigns.cancel(c.id, None, "admin:root", now=at(1.5))
    assert (p.state, p.queued, p.cancelled, p.waiting) == ("cancelled", 10, 20, 0)
    assert pacing.release(config, now=at(5)).released == 0
    assert OutboxNotify.select().count() == 10
    with pytest.raises(Conflict, match="already cancelled"):
        campaigns.cancel(c.id, None, "admin:root")
    actions = [e.action for e in AuditEvent.select().order_by(AuditEvent.id)]
    assert actions[-2:] == ["push_started", "push_cancelled"]


def test_deleted_phones_are_skipped_and_confirmation_counts_fetches(runtime):
    config = paced(runtime.config, 10.0)
    phones = add_phones(4)
    c = campaigns.start(config, "all", phones, actor="cli", now=T0)
    Device.delete().where(Device.id == phones[0]).execute()
    pacing.release(config, now=at(1))
    rows = {r.device_id: r for r in campaign_rows(c.id)}
    OutboxNotify.update(status="sent", sent_at=at(1)).where(
        OutboxNotify.id.in_([rows[phones[1]].id, rows[phones[2]].id])).execute()
    OutboxNotify.update(status="failed", last_error="404").where(
        OutboxNotify.id == rows[phones[3]].id).execute()
    Device.update(last_fetch_at=at(2), fetched_version=1).where(
        Device.id == phones[1]).execute()
    p = campaigns.progress(PushCampaign.get_by_id(c.id))
    assert (p.skipped, p.sent, p.confirmed, p.failed, p.queued) == (1, 2, 1, 1, 0)
    assert pacing.release(config, now=at(2)).finished == [c.id]


def test_scope_and_bad_input_are_refused_with_a_message(runtime):
    config = paced(runtime.config, 10.0)
    own = default_tenant()
    other = Tenant.create(name="Other", sip_domain="other.example")
    mine = add_phones(3)
    theirs = add_phones(2, tenant=other)
    foreign = campaigns.start(config, "tenant", theirs, actor="admin:root")
    assert foreign.tenant_id == other.id
    with pytest.raises(NotFound):
        campaigns.visible(foreign.id, [own.id])
    assert campaigns.recent([own.id]) == []
    assert [p.id for p in campaigns.recent([other.id])] == [foreign.id]
    with pytest.raises(NotFound):
        campaigns.cancel(foreign.id, [own.id], "admin:ann")
    with pytest.raises(NotFound):
        push_selection.phones_for([own.id], "tenant", tenant_id=other.id)
    with pytest.raises(NotFound, match=f"no phone with id {theirs[0]}"):
        push_selection.phones_for([own.id], "selected", device_ids=[mine[0], theirs[0]])
    assert push_selection.phones_for([own.id], "all") == mine
    assert sorted(push_selection.phones_for(None, "all")) == sorted(mine + theirs)
    mac = Device.get_by_id(theirs[0]).mac
    with pytest.raises(NotFound, match="no phone"):
        push_selection.resolve_phones(mac, [own.id])
    assert push_selection.resolve_phones(f"{mac}\n80003", None) == [theirs[0], mine[2]]
    with pytest.raises(InventoryError, match="several tenants"):
        push_selection.resolve_phones("80001", None)  # both tenants have a phone 80001
    with pytest.raises(InventoryError, match="neither a MAC address nor an extension"):
        push_selection.resolve_phones("80001 <script>", [own.id])
    with pytest.raises(InventoryError, match="paste at least one"):
        push_selection.resolve_phones(" ,\n", [own.id])
    with pytest.raises(InventoryError, match="at most 10 phones per second"):
        campaigns.start(config, "all", mine, actor="cli", rate=50)
    with pytest.raises(InventoryError, match="more than 0"):
        campaigns.start(config, "all", mine, actor="cli", rate=0)
    with pytest.raises(InventoryError, match="no phones"):
        campaigns.start(config, "all", [], actor="cli")
    with pytest.raises(InventoryError, match="scope must be"):
        push_selection.phones_for(None, "everything")
    with pytest.raises(InventoryError, match="choose at least one phone"):
        push_selection.phones_for(None, "selected")
    mixed = campaigns.start(config, "all", mine + theirs, actor="admin:root")
    assert mixed.tenant_id is None  # over two tenants: only system administrators see it
    with pytest.raises(NotFound):
        campaigns.visible(mixed.id, [own.id])


def test_upgrade_from_the_previous_schema_adds_the_push_tables(runtime, desk):
    db = runtime.db
    phones = add_phones(2)
    old_row = usecases.queue_checksync(runtime, desk, actor="cli")
    previous = next(n for n, step in enumerate(MIGRATIONS, start=1)
                    if step.__name__.endswith("_push_campaigns")) - 1
    db.drop_tables([PushTarget, PushCampaign, PushPacer])
    sqlite = is_sqlite(db)
    if sqlite:  # SQLite drops a column by rebuilding the table: keep dependent rows
        db.execute_sql("PRAGMA foreign_keys = OFF")
    migrate(SchemaMigrator.from_database(db).drop_column("outbox_notify", "paced"))
    if sqlite:
        db.execute_sql("PRAGMA foreign_keys = ON")
    SchemaVersion.delete().where(SchemaVersion.version > previous).execute()
    assert schema_version(db) == previous
    assert "push_campaign" not in db.get_tables()
    assert upgrade(db) == len(MIGRATIONS)
    assert {"push_campaign", "push_target", "push_pacer"} <= set(db.get_tables())
    assert "paced" in {c.name for c in db.get_columns("outbox_notify")}
    assert [d.id for d in Device.select().order_by(Device.id)] == [desk.id] + phones  # kept
    kept = OutboxNotify.get_by_id(old_row.id)
    assert (kept.status, kept.paced) == ("pending", None)  # an ordinary row, as before
    config = paced(runtime.config, 10.0)
    c = campaigns.start(config, "all", phones, actor="cli", now=T0)
    assert pacing.release(config, now=at(1)).released == 2
    assert campaigns.progress(c).queued == 2
    claimed = outbox.claim_due(10, "me", now=utcnow() + timedelta(seconds=5))
    assert claimed[0].id == old_row.id and len(claimed) == 3  # the old row goes first
    assert upgrade(db) == len(MIGRATIONS)  # idempotent


def test_push_rate_must_be_positive():
    from hotdesk.settings import ConfigError, load_config

    assert load_config(environ={}).notify.push_rate == 20.0
    assert load_config(environ={"HOTDESK_NOTIFY_PUSH_RATE": "2.5"}).notify.push_rate == 2.5
    for bad in ("0", "-1"):
        with pytest.raises(ConfigError, match="push_rate"):
            load_config(environ={"HOTDESK_NOTIFY_PUSH_RATE": bad})
