"""Auto-logout, reconciliation and the worker loop, against the real database fixtures."""

from __future__ import annotations

import dataclasses
import threading
from datetime import datetime, timedelta

import pytest
from peewee import OperationalError

from hotdesk.calls.service import CallContext, HotdeskService, Outcome
from hotdesk.notify import reconcile
from hotdesk.notify.outbox import claim_due, drain_once, mark_failed, mark_sent
from hotdesk.ops import health, worker
from hotdesk.settings import Config, ConfigError, PolicyConfig, WorkerConfig, load_config
from hotdesk.store.models import AuditEvent, Device, OutboxNotify, Session, Tenant


def ctx(endpoint: str = "8001") -> CallContext:
    return CallContext(switch="asterisk", call_id="w1", endpoint=endpoint,
                       source="192.0.2.10:5060")


def active(device: Device) -> list[Session]:
    return list(Session.select().where((Session.device == device) & Session.ended_at.is_null()))


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


class Recorder:
    def __init__(self) -> None:
        self.sent: list[int] = []

    def send(self, target) -> None:  # type: ignore[no-untyped-def]
        self.sent.append(target.outbox_id)


def with_policy(config: Config, **kw) -> Config:  # type: ignore[no-untyped-def]
    return dataclasses.replace(config, policy=dataclasses.replace(config.policy, **kw))


# -- daily cut-off arithmetic ------------------------------------------------------------

def test_last_cutoff_looks_back_to_yesterday_when_today_not_reached():
    now = datetime(2024, 3, 5, 1, 30)  # 01:30 UTC
    assert worker.last_cutoff(now, "00:00", "UTC") == datetime(2024, 3, 5, 0, 0)
    assert worker.last_cutoff(now, "23:00", "UTC") == datetime(2024, 3, 4, 23, 0)
    assert worker.last_cutoff(now, "", "UTC") is None


def test_last_cutoff_uses_the_configured_zone_across_dst():
    # Berlin is UTC+1 in winter, UTC+2 after 31 March 2024.
    assert (worker.last_cutoff(datetime(2024, 3, 1, 12, 0), "03:00", "Europe/Berlin")
            == datetime(2024, 3, 1, 2, 0))
    assert (worker.last_cutoff(datetime(2024, 4, 2, 12, 0), "03:00", "Europe/Berlin")
            == datetime(2024, 4, 2, 1, 0))


def test_bad_daily_logout_and_zone_are_config_errors():
    with pytest.raises(ConfigError, match="daily_logout_time"):
        load_config(environ={"HOTDESK_POLICY_DAILY_LOGOUT_TIME": "25:00"})
    with pytest.raises(ConfigError, match="timezone"):
        load_config(environ={"HOTDESK_POLICY_TIMEZONE": "Mars/Olympus"})


# -- auto-logout --------------------------------------------------------------------------

def test_max_login_time_expires_session_and_queues_idle_notify(runtime, alice, desk):
    clock = Clock(datetime(2024, 3, 5, 9, 0))
    cfg = with_policy(runtime.config, max_login_minutes=60)
    svc = HotdeskService(runtime.db, cfg, clock=clock)
    assert svc.login(desk.id, "101", "1234", ctx()).outcome is Outcome.LOGGED_IN
    clock.now += timedelta(minutes=59)
    assert worker.tick(svc, cfg, now=clock.now).expired == 0
    clock.now += timedelta(minutes=2)
    assert worker.tick(svc, cfg, now=clock.now).expired == 1
    assert active(desk) == []
    assert Session.get(Session.device == desk).end_reason == "expired"
    # The phone is registered as 101 until it fetches the idle profile.
    row = (OutboxNotify.select().where(OutboxNotify.status == "pending")
           .order_by(OutboxNotify.id.desc()).first())
    assert row.endpoint == "101" and row.config_version == 3


def test_tenant_overrides_config_max_login(runtime, alice, desk):
    Tenant.update(max_login_minutes=5).execute()
    clock = Clock(datetime(2024, 3, 5, 9, 0))
    svc = HotdeskService(runtime.db, with_policy(runtime.config, max_login_minutes=600),
                         clock=clock)
    svc.login(desk.id, "101", "1234", ctx())
    clock.now += timedelta(minutes=6)
    assert worker.expire_sessions(svc) == 1


def test_daily_logout_catches_up_after_worker_downtime(runtime, alice, bob, desk, desk2):
    clock = Clock(datetime(2024, 3, 4, 18, 0))
    cfg = with_policy(runtime.config, daily_logout_time="00:00")
    svc = HotdeskService(runtime.db, cfg, clock=clock)
    svc.login(desk.id, "101", "1234", ctx())
    # The worker was down at midnight; it starts at 02:00 and still logs alice out.
    clock.now = datetime(2024, 3, 5, 2, 0)
    svc.login(desk2.id, "102", "4321", ctx("8002"))  # after the cut-off: stays
    assert worker.daily_logout(svc, cfg) == 1
    assert active(desk) == [] and len(active(desk2)) == 1
    assert Session.get(Session.user == alice).end_reason == "daily_logout"
    # Running it again (or on a second worker) changes nothing.
    assert worker.daily_logout(svc, cfg) == 0


def test_tenant_daily_logout_time_overrides_config(runtime, alice, desk):
    Tenant.update(daily_logout_time="12:00").execute()
    clock = Clock(datetime(2024, 3, 5, 11, 0))
    svc = HotdeskService(runtime.db, runtime.config, clock=clock)
    svc.login(desk.id, "101", "1234", ctx())
    assert worker.daily_logout(svc, runtime.config) == 0
    clock.now = datetime(2024, 3, 5, 12, 1)
    assert worker.daily_logout(svc, runtime.config) == 1


def test_background_logout_never_ends_a_newer_session(runtime, alice, bob, desk):
    svc = runtime.service
    svc.login(desk.id, "101", "1234", ctx())
    old = active(desk)[0]
    svc.login(desk.id, "102", "4321", ctx())  # bob takes the desk in between
    assert svc.logout(desk.id, reason="daily_logout", session_id=old.id) is Outcome.NOT_LOGGED_IN
    assert active(desk)[0].user_id == bob.id


def test_two_workers_daily_logout_concurrently_end_each_session_once(runtime, alice, desk):
    """Idempotent across workers: two threads, each with its own connection, race."""
    clock = Clock(datetime(2024, 3, 4, 18, 0))
    cfg = with_policy(runtime.config, daily_logout_time="00:00")
    svc = HotdeskService(runtime.db, cfg, clock=clock)
    svc.login(desk.id, "101", "1234", ctx())
    clock.now = datetime(2024, 3, 5, 0, 5)
    results: list[int] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait(timeout=10)
        try:
            results.append(worker.daily_logout(svc, cfg))
        finally:
            runtime.db.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results) == [0, 1]
    logouts = AuditEvent.select().where((AuditEvent.action == "logout")
                                        & AuditEvent.detail.contains("daily_logout")).count()
    assert logouts == 1
    # One NOTIFY for the login, exactly one for the logout.
    assert OutboxNotify.select().where(OutboxNotify.device == desk).count() == 2


# -- reconciliation ----------------------------------------------------------------------

def reconcile_config(config: Config, max_requeues: int = 2) -> Config:
    return dataclasses.replace(
        config,
        provisioning=dataclasses.replace(config.provisioning, fetch_timeout_seconds=60),
        worker=WorkerConfig(reconcile_max_requeues=max_requeues,
                            reconcile_backoff_max_seconds=3600))


def send_all(now: datetime, config: Config) -> list[int]:
    rec = Recorder()
    drain_once(rec, config.notify, "test", now=now)
    return rec.sent


def test_reconcile_requeues_with_backoff_then_flags_pending(runtime, alice, desk):
    cfg = reconcile_config(runtime.config, max_requeues=2)
    t0 = datetime(2024, 3, 5, 9, 0)
    svc = HotdeskService(runtime.db, cfg, clock=Clock(t0))
    svc.login(desk.id, "101", "1234", ctx())
    assert reconcile.reconcile(cfg, t0).requeued == 0  # a NOTIFY is still pending
    assert send_all(t0, cfg)
    device = Device.get_by_id(desk.id)
    assert reconcile.device_provisioning_state(device) == "pending"
    assert reconcile.reconcile(cfg, t0 + timedelta(seconds=59)).requeued == 0
    assert reconcile.reconcile(cfg, t0 + timedelta(seconds=61)).requeued == 1
    row = OutboxNotify.select().order_by(OutboxNotify.id.desc()).first()
    # Not fetched: the phone is still registered as its idle extension.
    assert (row.endpoint, row.config_version, row.status) == ("8001", 2, "pending")
    # No second re-queue while one is pending.
    assert reconcile.reconcile(cfg, t0 + timedelta(seconds=200)).requeued == 0
    t1 = t0 + timedelta(seconds=200)
    send_all(t1, cfg)
    # Second re-send waits twice the fetch timeout.
    assert reconcile.reconcile(cfg, t1 + timedelta(seconds=100)).requeued == 0
    assert reconcile.reconcile(cfg, t1 + timedelta(seconds=121)).requeued == 1
    t2 = t1 + timedelta(seconds=121)
    send_all(t2, cfg)
    # Budget used (1 + 2 NOTIFYs for v2): flagged once, never re-queued again.
    later = t2 + timedelta(days=1)
    result = reconcile.reconcile(cfg, later)
    assert (result.requeued, result.flagged) == (0, 1)
    assert reconcile.reconcile(cfg, later + timedelta(days=1)).flagged == 0
    assert AuditEvent.select().where(AuditEvent.action == "provisioning_pending").count() == 1
    assert reconcile.device_provisioning_state(Device.get_by_id(desk.id)) == "pending"
    # The phone finally fetches: ok, and nothing more to do.
    Device.update(fetched_version=Device.config_version).execute()
    assert reconcile.device_provisioning_state(Device.get_by_id(desk.id)) == "ok"
    assert reconcile.reconcile(cfg, later + timedelta(days=2)).requeued == 0


def test_fetched_devices_and_never_notified_devices_are_left_alone(runtime, desk, desk2):
    cfg = reconcile_config(runtime.config)
    Device.update(fetched_version=1).where(Device.id == desk.id).execute()
    now = datetime(2030, 1, 1)
    assert reconcile.reconcile(cfg, now).requeued == 0
    assert OutboxNotify.select().count() == 0
    assert reconcile.device_provisioning_state(Device.get_by_id(desk.id)) == "ok"
    assert reconcile.device_provisioning_state(Device.get_by_id(desk2.id)) == "pending"


def test_failed_notify_makes_state_failed(runtime, alice, desk):
    runtime.service.login(desk.id, "101", "1234", ctx())
    OutboxNotify.update(status="failed").execute()
    assert reconcile.device_provisioning_state(Device.get_by_id(desk.id)) == "failed"
    assert reconcile.provisioning_state_counts() == {"ok": 0, "pending": 0, "failed": 1}


def test_requeue_after_fetch_of_older_version_targets_current_registration(runtime, alice,
                                                                           desk):
    """The phone fetched v2 (now registered as 101), then v3 was published without a
    NOTIFY reaching it: the re-sent NOTIFY goes to 101, not to the idle extension."""
    cfg = reconcile_config(runtime.config)
    t0 = datetime(2024, 3, 5, 9, 0)
    svc = HotdeskService(runtime.db, cfg, clock=Clock(t0))
    svc.login(desk.id, "101", "1234", ctx())
    send_all(t0, cfg)
    Device.update(fetched_version=2, config_version=3).execute()
    assert reconcile.reconcile(cfg, t0 + timedelta(seconds=61)).requeued == 1
    row = OutboxNotify.select().order_by(OutboxNotify.id.desc()).first()
    assert (row.endpoint, row.config_version) == ("101", 3)


def test_expired_claim_lease_is_reclaimed_and_released(runtime, alice, desk):
    runtime.service.login(desk.id, "101", "1234", ctx())
    t0 = datetime(2024, 3, 5, 9, 0)
    OutboxNotify.update(next_attempt_at=t0).execute()
    [row] = claim_due(10, "crashed-node:1", lease=timedelta(seconds=30), now=t0)
    # Within the lease nobody else gets it.
    assert claim_due(10, "other:2", now=t0 + timedelta(seconds=29)) == []
    assert reconcile.release_expired_claims(t0 + timedelta(seconds=10)) == 0
    # Past the lease: another drainer takes it and sends it exactly once.
    [again] = claim_due(10, "other:2", now=t0 + timedelta(seconds=31))
    assert again.id == row.id and again.claimed_by == "other:2"
    assert mark_sent(again, "other:2")
    # The first drainer comes back late: its claim is gone, it writes nothing.
    assert not mark_sent(row, "crashed-node:1")
    assert mark_failed(row, "crashed-node:1", "late", runtime.config.notify) is None
    done = OutboxNotify.get_by_id(row.id)
    assert (done.status, done.attempts, done.last_error) == ("sent", 1, "")
    # A lease left behind by a dead drainer is tidied by the worker.
    runtime.service.reprovision(desk.id)
    new = OutboxNotify.select().where(OutboxNotify.status == "pending").get()
    OutboxNotify.update(next_attempt_at=t0).where(OutboxNotify.id == new.id).execute()
    claim_due(10, "crashed-node:1", lease=timedelta(seconds=30), now=t0)
    assert reconcile.release_expired_claims(t0 + timedelta(seconds=31)) == 1
    assert OutboxNotify.get_by_id(new.id).claimed_until is None


# -- the loop -------------------------------------------------------------------------------

def test_run_worker_ticks_reports_heartbeat_and_stops(runtime, alice, desk):
    cfg = dataclasses.replace(runtime.config, worker=WorkerConfig(interval_seconds=0.05))
    stop = threading.Event()
    seen: list[worker.TickResult] = []

    def on_tick(result: worker.TickResult) -> None:
        seen.append(result)
        if len(seen) == 3:
            stop.set()

    rec = Recorder()
    runtime.service.login(desk.id, "101", "1234", ctx())
    ticks = worker.run_worker(runtime.service, cfg, stop, sender=rec, max_ticks=10,
                              on_tick=on_tick)
    assert ticks == 3 and len(rec.sent) == 1
    [beat] = [b for b in health.read_all() if b.component == "worker"]
    assert beat.state == "down" and beat.detail == "stopped"


def test_run_worker_survives_database_errors(runtime, monkeypatch, caplog):
    cfg = dataclasses.replace(runtime.config, worker=WorkerConfig(interval_seconds=0.01))
    calls = {"n": 0}
    real_tick = worker.tick

    def flaky(*args, **kw):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise OperationalError("database is locked")
        return real_tick(*args, **kw)

    monkeypatch.setattr(worker, "tick", flaky)
    stop = threading.Event()
    with caplog.at_level("WARNING"):
        ticks = worker.run_worker(runtime.service, cfg, stop, max_ticks=2)
    assert ticks == 2 and calls["n"] == 2
    assert "database unavailable" in caplog.text


def test_config_sections_for_operations_have_defaults():
    cfg = Config()
    assert cfg.worker.interval_seconds > 0 and cfg.notify.sender == "none"
    assert cfg.metrics.listen == "" and cfg.policy.timezone == "UTC"
    assert PolicyConfig().daily_logout_time == ""



def test_worker_senders_are_none_log_or_module_factory(runtime, database_url):
    from hotdesk.notify.drain import LogSender, make_sender
    from tests.test_cli import hotdesk

    assert make_sender("none", runtime.config) is None
    assert isinstance(make_sender("log", runtime.config), LogSender)
    # A name that is neither: a configuration error naming what to use instead.
    done = hotdesk(database_url, "worker", "--once", "--sender", "ami", check=False)
    assert done.returncode == 2
    assert "[notify] sender = 'ami': unknown sender; use none, log or module:factory" \
        in done.stderr
