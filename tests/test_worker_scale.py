"""The worker's tick at fleet scale: its statements do not grow with the number of phones,
its set-based reads decide exactly as the per-phone rules, and two workers still queue one
re-send, not one each (SQLite here; PostgreSQL when HOTDESK_TEST_DATABASE_URL is set)."""

from __future__ import annotations

import dataclasses
import threading
from datetime import datetime, timedelta

import pytest
from peewee import fn

from hotdesk.admin.inventory import default_tenant
from hotdesk.calls.service import HotdeskService
from hotdesk.notify import confirm, reconcile
from hotdesk.ops import worker
from hotdesk.settings import Config, WorkerConfig
from hotdesk.store import audit
from hotdesk.store.models import (
    Device,
    Heartbeat,
    OutboxNotify,
    Registration,
    RegistrationFailure,
    Session,
    User,
)
from hotdesk.switch import drift
from hotdesk.switch import registrations as regs
from hotdesk.switch.accounts import Credentials, fingerprint
from hotdesk.switch.upkeep import SwitchUpkeep
from tests.test_worker import Clock

T0 = datetime(2030, 5, 6, 9, 0)
KINDS = ("idle_ok", "user_ok", "waiting", "in_flight", "gave_up", "mismatch_flagged",
         "rejected_flagged")


class Accounts:
    """The switch's accounts: every user's password is ``pw-<ext>`` unless changed."""

    def __init__(self) -> None:
        self.passwords: dict[str, str] = {}
        self.reads = 0

    def read(self, account: str, domain: str) -> Credentials:
        self.reads += 1
        return Credentials(account, self.passwords.get(account, f"pw-{account}"))


def scale_config(config: Config) -> Config:
    return dataclasses.replace(
        config, provisioning=dataclasses.replace(config.provisioning, fetch_timeout_seconds=60),
        worker=WorkerConfig(reconcile_max_requeues=2, reconcile_backoff_max_seconds=3600))


def outbox_row(device: Device, endpoint: str, status: str, at: datetime,
               gave_up: bool = False) -> None:
    OutboxNotify.create(tenant=device.tenant_id, device=device, endpoint=endpoint,
                        config_version=device.config_version, status=status,
                        next_attempt_at=at, created_at=at,
                        sent_at=at if status == "sent" else None, gave_up=gave_up)


def register(device: Device, account: str, now: datetime) -> None:
    Registration.create(account=account, device=device, address="10.0.0.1:5060",
                        contact_uri=f"sip:{account}@10.0.0.1:5060:{device.id}",
                        refreshed_at=now - timedelta(minutes=1),
                        expires_at=now + timedelta(hours=2))


def add_unit(n: int, now: datetime) -> dict[str, Device]:
    """One phone of every kind a steady fleet holds, none of which the tick acts on."""
    tenant = default_tenant()
    phones: dict[str, Device] = {}
    for k, kind in enumerate(KINDS):
        i = n * len(KINDS) + k
        fetched = kind in ("idle_ok", "user_ok", "mismatch_flagged", "rejected_flagged")
        d = Device.create(tenant=tenant, mac=f"0015aa{i:06x}", idle_extension=str(8000 + i),
                          idle_sip_username=str(8000 + i), prov_token=f"scale-{i}",
                          config_version=2, fetched_version=2 if fetched else 1,
                          last_fetch_at=now - timedelta(hours=1))
        phones[kind] = d
        account = d.idle_sip_username
        if kind == "user_ok":
            ext = str(5000 + i)
            user = User.create(tenant=tenant, extension=ext, sip_username=ext,
                               display_name=f"User {ext}", hotdesk_enabled=True)
            Session.create(tenant=tenant, device=d, user=user, started_at=now - timedelta(hours=1))
            Device.update(account_fingerprint=fingerprint(
                Credentials(ext, f"pw-{ext}"), f"User {ext}", d.prov_token)).where(
                Device.id == d.id).execute()
            account = ext
        if kind == "waiting":
            outbox_row(d, account, "sent", now - timedelta(seconds=10))
        elif kind == "in_flight":
            outbox_row(d, account, "pending", now - timedelta(seconds=10))
        else:
            for back in (3, 2, 1):
                done = kind in ("gave_up", "mismatch_flagged") and back == 1
                outbox_row(d, account, "sent", now - timedelta(hours=back), gave_up=done)
        if kind == "mismatch_flagged":
            register(d, "someone-else", now)
            audit.record("registration_unconfirmed", tenant=tenant, device=d, config_version=2,
                         expected=account, registered_as="someone-else", reason="wrong account")
        elif kind == "rejected_flagged":
            RegistrationFailure.create(address=f"10.0.1.{i}:5060", account=account, device=d,
                                       reason="wrong password", at=now - timedelta(minutes=5))
            audit.record("credentials_rejected", tenant=tenant, device=d, config_version=2,
                         expected=account, registered_as="", reason="wrong password")
        elif kind in ("idle_ok", "user_ok"):
            register(d, account, now)
    return phones


def watcher_up(now: datetime) -> None:
    Heartbeat.delete().where(Heartbeat.component == regs.COMPONENT).execute()
    Heartbeat.create(component=regs.COMPONENT, node="t", state="up", since=now, updated_at=now)


class Statements:
    def __init__(self, db, monkeypatch) -> None:  # type: ignore[no-untyped-def]
        self.n = 0
        real = db.execute_sql

        def counted(*args, **kw):  # type: ignore[no-untyped-def]
            self.n += 1
            return real(*args, **kw)

        monkeypatch.setattr(db, "execute_sql", counted)


def test_statements_per_tick_do_not_grow_with_the_fleet(runtime, monkeypatch):
    cfg = scale_config(runtime.config)
    svc = HotdeskService(runtime.db, cfg, clock=Clock(T0))
    accounts = Accounts()
    upkeep = SwitchUpkeep(runtime.db, cfg, view=accounts)  # type: ignore[arg-type]
    watcher_up(T0)
    counter = Statements(runtime.db, monkeypatch)

    def steady_tick() -> tuple[int, worker.TickResult]:
        worker.tick(svc, cfg, now=T0, switch_upkeep=upkeep)  # the new phones' first tick
        before = counter.n
        result = worker.tick(svc, cfg, now=T0, switch_upkeep=upkeep)
        return counter.n - before, result

    add_unit(0, T0)
    small, result = steady_tick()
    assert result.summary().startswith("expired=0 daily_logout=0 requeued=0 flagged_pending=0")
    for n in range(1, 5):
        add_unit(n, T0)
    reads = accounts.reads
    large, result = steady_tick()
    assert result.summary().startswith("expired=0 daily_logout=0 requeued=0 flagged_pending=0")
    assert large == small, (small, large)
    # Five times the phones, the same statements, yet every phone was looked at: each
    # logged-in user's account was read, and each waiting phone's re-send comes due.
    assert accounts.reads - reads == 2 * 5
    later = T0 + timedelta(minutes=5)
    watcher_up(later)
    due = worker.tick(svc, cfg, now=later, switch_upkeep=upkeep)
    assert (due.requeued, due.flagged, due.unconfirmed) == (5, 0, 0)


def test_reconcile_reads_in_batches_and_decides_every_phone(runtime, monkeypatch):
    cfg = scale_config(runtime.config)
    monkeypatch.setattr(reconcile, "BATCH", 2)
    waiting = [add_unit(n, T0)["waiting"] for n in range(5)]
    assert [len(b) for b in reconcile.pending_batches()] == [2] * 7 + [1]  # 15 pending
    result = reconcile.reconcile(cfg, T0 + timedelta(minutes=5))
    assert (result.requeued, result.flagged) == (5, 0)
    assert result.waiting == 5  # the phones with a NOTIFY in flight
    for d in waiting:
        assert OutboxNotify.select().where((OutboxNotify.device == d)
                                           & (OutboxNotify.status == "pending")).count() == 1


def test_set_based_facts_decide_as_the_per_phone_rules(runtime, desk, desk2):
    """The grouped read counts only the current version's rows, leaves superseded ones
    and an older version's give-up out, and takes the newest row of any version."""
    OutboxNotify.delete().execute()
    Device.update(config_version=2, fetched_version=1).where(Device.id == desk.id).execute()
    outbox_row(Device.get_by_id(desk.id), "8001", "sent", T0, gave_up=True)
    Device.update(config_version=3).where(Device.id == desk.id).execute()
    device = Device.get_by_id(desk.id)
    outbox_row(device, "8001", "superseded", T0 + timedelta(seconds=1))
    outbox_row(device, "8001", "sent", T0 + timedelta(seconds=2))
    facts = reconcile.notify_facts([device, Device.get_by_id(desk2.id)])
    mine = facts[desk.id]
    assert (mine.sent_for_version, mine.gave_up) == (1, False)
    assert (mine.newest.status, mine.newest.created_at) == ("sent", T0 + timedelta(seconds=2))
    never = facts[desk2.id]
    assert (never.newest, never.sent_for_version, never.gave_up) == (None, 0, False)
    cfg = scale_config(runtime.config)
    assert not reconcile.decide(mine, cfg, T0 + timedelta(seconds=61)).due
    assert reconcile.decide(mine, cfg, T0 + timedelta(seconds=62)).due
    assert not reconcile.decide(never, cfg, T0 + timedelta(days=1)).due


def test_state_counts_match_each_phones_state(runtime):
    phones = [add_unit(n, T0) for n in range(2)]
    failed = phones[0]["waiting"]
    outbox_row(failed, "x", "failed", T0)
    # An older failed row does not make a phone failed; only its newest row counts.
    outbox_row(phones[1]["waiting"], "x", "failed", T0 - timedelta(days=1))
    outbox_row(phones[1]["waiting"], "x", "sent", T0)
    expected = {"ok": 0, "pending": 0, "failed": 0}
    for d in Device.select():
        expected[reconcile.device_provisioning_state(d)] += 1
    assert reconcile.provisioning_state_counts() == expected
    assert expected["failed"] == 1 and expected["ok"] == 8


def test_confirm_judges_every_phone_not_certainly_registered(runtime):
    """Left out of the per-phone judgement is only an unexpired registration of the phone
    as its expected account with no refusal; the rest goes through the full rules."""
    cfg = scale_config(runtime.config)
    unit = add_unit(0, T0)
    ok, user_ok = unit["idle_ok"], unit["user_ok"]
    grace = timedelta(seconds=60)
    assert {d.id for d in confirm.unconfirmed_devices(grace, T0)} == {
        unit["mismatch_flagged"].id, unit["rejected_flagged"].id}
    # The registration expired (its event never came): judged, and not registered.
    Registration.update(expires_at=T0 - timedelta(seconds=1)).where(
        Registration.device == ok).execute()
    # A refusal newer than the good registration: judged, and rejected.
    RegistrationFailure.create(address="10.9.9.9:5060", account="x", device=user_ok,
                               reason="wrong password", at=T0)
    judged = {d.id for d in confirm.unconfirmed_devices(grace, T0)}
    assert {ok.id, user_ok.id} <= judged
    views = regs.views([Device.get_by_id(ok.id), Device.get_by_id(user_ok.id)], T0)
    assert (views[ok.id].state, views[user_ok.id].state) == (regs.UNREGISTERED, regs.REJECTED)
    # A registration stored before its phone was added (no phone yet) still counts.
    Registration.update(device=None, expires_at=T0 + timedelta(hours=1)).where(
        Registration.device == ok).execute()
    watcher_up(T0)
    result = confirm.check(cfg, T0)
    assert result.confirmed == 1 and result.rejected == 1  # idle_ok, user_ok newly flagged


@pytest.mark.parametrize("job", ["reconcile", "confirm"])
def test_two_workers_queue_one_resend(runtime, job):
    """Both read the phones as due without a lock; the row locks and the re-check let
    exactly one of them queue each NOTIFY (reconcile: three phones in one group)."""
    cfg = scale_config(runtime.config)
    unit = add_unit(0, T0)
    others = [add_unit(n, T0)["waiting"] for n in (1, 2)] if job == "reconcile" else []
    later = T0 + timedelta(minutes=5)
    if job == "confirm":
        device = unit["user_ok"]  # not registered any more, one NOTIFY for its version
        Registration.delete().where(Registration.device == device).execute()
        newest = OutboxNotify.select(fn.MAX(OutboxNotify.id)).where(OutboxNotify.device == device)
        OutboxNotify.delete().where((OutboxNotify.device == device)
                                    & (OutboxNotify.id.not_in(newest))).execute()
        watcher_up(later)
        run = confirm.check
    else:
        device = unit["waiting"]
        run = reconcile.reconcile
    barrier = threading.Barrier(2)
    results: list[int] = []
    errors: list[BaseException] = []
    real_decide = reconcile.decide
    waited = threading.local()

    def decide_then_wait(facts, config, now):  # type: ignore[no-untyped-def]
        decision = real_decide(facts, config, now)
        if facts.device.id == device.id and not getattr(waited, "done", False):
            waited.done = True
            barrier.wait(timeout=10)  # both read "due" without a lock before either writes
        return decision

    def one() -> None:
        try:
            results.append(run(cfg, later).requeued)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            runtime.db.close()

    reconcile.decide = decide_then_wait  # type: ignore[assignment]
    try:
        threads = [threading.Thread(target=one, name=f"w{i}") for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    finally:
        reconcile.decide = real_decide  # type: ignore[assignment]
    assert not errors, errors
    assert sorted(results) == [0, 1 + len(others)]
    for phone in [device, *others]:
        assert OutboxNotify.select().where((OutboxNotify.device == phone)
                                           & (OutboxNotify.status == "pending")).count() == 1


def test_drift_budget_defers_the_rest_and_a_warm_memo_sees_a_change(runtime):
    cfg = scale_config(runtime.config)
    users = [add_unit(n, T0)["user_ok"] for n in range(3)]
    accounts = Accounts()
    memo = drift.FingerprintMemo()
    first = drift.heal(runtime.db, cfg, accounts, memo=memo, verify_budget=2)
    assert (first.checked, first.deferred, first.reprovisioned) == (3, 1, 0)
    second = drift.heal(runtime.db, cfg, accounts, memo=memo, verify_budget=2)
    assert (second.deferred, second.reprovisioned) == (0, 0)
    # Warm: no slow fingerprint is computed for unchanged accounts...
    assert drift.heal(runtime.db, cfg, accounts, memo=memo, verify_budget=0).deferred == 0
    # ...and a password changed on the switch is a miss: verified, re-provisioned.
    user = Session.get(Session.device == users[1]).user
    stored = Device.get_by_id(users[1].id).account_fingerprint
    accounts.passwords[user.sip_username] = "changed"
    third = drift.heal(runtime.db, cfg, accounts, memo=memo, verify_budget=2)
    assert (third.deferred, third.reprovisioned) == (0, 1)
    moved = Device.get_by_id(users[1].id)
    assert moved.config_version == 3 and moved.account_fingerprint not in (stored, "")
    assert OutboxNotify.select().where((OutboxNotify.device == moved)
                                       & (OutboxNotify.config_version == 3)).count() == 1
