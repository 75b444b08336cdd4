"""Registrations observed: the switch-neutral core (tables, which phone, the rules, the worker)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from hotdesk.calls.service import CallContext, HotdeskService
from hotdesk.notify import confirm
from hotdesk.notify.outbox import drain_once
from hotdesk.ops import health, worker
from hotdesk.settings import Config, WorkerConfig
from hotdesk.store.db import (
    MIGRATIONS,
    _v5_create_registrations,
    current_database,
    open_database,
    schema_version,
    upgrade,
)
from hotdesk.store.models import (
    ALL_MODELS,
    AuditEvent,
    Device,
    OutboxNotify,
    Registration,
    RegistrationFailure,
)
from hotdesk.switch import registrations as regs
from tests.conftest import make_device
from tests.test_worker import Clock, Recorder

T0 = datetime(2030, 5, 6, 9, 0)


def seen(account: str, ip_port: str, at: datetime = T0, **kw) -> regs.ContactSeen:  # type: ignore[no-untyped-def]
    return regs.ContactSeen(account, f"sip:{account}@{ip_port};transport=UDP", ip_port, at,
                            **kw)


def gone(account: str, ip_port: str, at: datetime = T0) -> regs.ContactGone:
    return regs.ContactGone(account, f"sip:{account}@{ip_port};transport=UDP", at)


def ctx(endpoint: str = "8001", source: str = "10.0.0.7:5060") -> CallContext:
    return CallContext(switch="asterisk", endpoint=endpoint, source=source, call_id="c1")


def test_host_port_and_ip_of():
    assert regs.host_port("sip:8001@127.0.0.1:5071;transport=UDP") == "127.0.0.1:5071"
    assert regs.host_port("<sip:101@[2001:db8::7]:5060>") == "[2001:db8::7]:5060"
    assert regs.ip_of("10.0.0.7:5060") == "10.0.0.7"
    assert regs.ip_of("[2001:db8::7]:5060") == "2001:db8::7"


def test_registration_stored_attributed_refreshed_and_removed(runtime, desk):
    regs.apply([seen("8001", "10.0.0.7:5060", expires_at=T0 + timedelta(hours=1),
                     user_agent="Yealink SIP-T54W")], "asterisk")
    row = Registration.get()
    assert (row.account, row.address, row.device_id) == ("8001", "10.0.0.7:5060", desk.id)
    # A refresh (Asterisk's ContactStatus carries no expiry or User-Agent) keeps "since",
    # the expiry and the User-Agent the listing gave, and moves refreshed_at.
    regs.apply([seen("8001", "10.0.0.7:5060", at=T0 + timedelta(minutes=5))], "asterisk")
    row = Registration.get()
    assert row.registered_at == T0 and row.refreshed_at == T0 + timedelta(minutes=5)
    assert row.expires_at == T0 + timedelta(hours=1)
    assert row.user_agent == "Yealink SIP-T54W"
    v = regs.view(Device.get_by_id(desk.id), now=T0 + timedelta(minutes=10))
    assert (v.state, v.account, v.address, v.expected) == ("registered", "8001",
                                                           "10.0.0.7:5060", "8001")
    assert v.age(T0 + timedelta(minutes=10)) == "10m"
    regs.apply([gone("8001", "10.0.0.7:5060")], "asterisk")
    assert Registration.select().count() == 0
    assert regs.view(Device.get_by_id(desk.id)).state == "unregistered"


def test_last_word_per_contact_wins_within_a_batch(runtime, desk):
    regs.apply([seen("8001", "10.0.0.7:5060"), gone("8001", "10.0.0.7:5060")], "asterisk")
    assert Registration.select().count() == 0
    regs.apply([gone("8001", "10.0.0.7:5060"), seen("8001", "10.0.0.7:5060")], "asterisk")
    assert Registration.select().count() == 1


def test_expected_account_follows_the_session_and_mismatch_shows(runtime, alice, desk):
    runtime.service.login(desk.id, "101", "1234", ctx())
    device = Device.get_by_id(desk.id)
    # Still registered as the idle account after the login: the wrong account.
    regs.apply([seen("8001", "10.0.0.7:5060")], "asterisk")
    v = regs.view(device)
    assert (v.state, v.account, v.expected, v.label) == ("mismatch", "8001", "101",
                                                         "wrong account")
    assert "WRONG ACCOUNT 8001" in v.summary(T0) and "expects 101" in v.summary(T0)
    # The phone re-registers as the user: the user's account wins over the leftover one.
    regs.apply([seen("101", "10.0.0.7:5060", at=T0 + timedelta(seconds=5))], "asterisk")
    assert Registration.get(Registration.account == "101").device_id == desk.id
    v = regs.view(device)
    assert (v.state, v.account) == ("registered", "101")


def test_user_logged_in_on_two_phones_is_told_apart_by_address(runtime, alice, desk, desk2):
    Device.update(last_address="10.0.0.7:5060").where(Device.id == desk.id).execute()
    Device.update(last_address="10.0.0.8:5060").where(Device.id == desk2.id).execute()
    cfg = dataclasses.replace(runtime.config, policy=dataclasses.replace(
        runtime.config.policy, multiple_login="allow"))
    svc = HotdeskService(runtime.db, cfg)
    svc.login(desk.id, "101", "1234", ctx("8001", "10.0.0.7:5060"))
    svc.login(desk2.id, "101", "1234", ctx("8002", "10.0.0.8:5060"))
    regs.apply([seen("101", "10.0.0.8:5060"), seen("101", "10.0.0.7:5060")], "asterisk")
    by_addr = {r.address: r.device_id for r in Registration.select()}
    assert by_addr == {"10.0.0.7:5060": desk.id, "10.0.0.8:5060": desk2.id}


def test_registration_of_an_unknown_account_is_kept_but_belongs_to_no_phone(runtime, desk):
    regs.apply([seen("555", "192.0.2.9:5060")], "asterisk")
    assert Registration.get().device_id is None
    assert regs.view(Device.get_by_id(desk.id)).state == "unregistered"


def test_refused_registration_is_credentials_rejected_until_a_newer_success(runtime, alice,
                                                                           desk):
    runtime.service.login(desk.id, "101", "1234", ctx())
    regs.apply([seen("8001", "10.0.0.7:5060")], "asterisk")
    refused = regs.AuthRefused("101", "10.0.0.7:5060", "wrong password",
                               T0 + timedelta(seconds=3))
    regs.apply([refused, refused], "asterisk")
    fail = RegistrationFailure.get()
    assert (fail.device_id, fail.count, fail.account) == (desk.id, 2, "101")
    v = regs.view(Device.get_by_id(desk.id))
    assert (v.state, v.label, v.failure_reason) == ("rejected", "credentials rejected",
                                                    "wrong password")
    assert "credentials rejected: wrong password" in v.summary(T0 + timedelta(seconds=9))
    regs.apply([refused], "asterisk")
    assert RegistrationFailure.get().count == 3  # counted, one row per address
    regs.apply([seen("101", "10.0.0.7:5060", at=T0 + timedelta(seconds=20))], "asterisk")
    assert regs.view(Device.get_by_id(desk.id)).state == "registered"


def test_accepted_credentials_settle_a_refusal_without_a_contact_event(runtime, desk):
    """Asterisk raises no ContactStatus for a refresh, but SuccessfulAuth: it settles."""
    regs.apply([seen("8001", "10.0.0.7:5060")], "asterisk")
    regs.apply([regs.AuthRefused("8001", "10.0.0.7:5060", "wrong password",
                                 T0 + timedelta(seconds=5))], "asterisk")
    assert regs.view(Device.get_by_id(desk.id)).state == "rejected"
    regs.apply([regs.AuthAccepted("8001", "10.0.0.7:5060", T0 + timedelta(seconds=9))],
               "asterisk")
    assert regs.view(Device.get_by_id(desk.id)).state == "registered"
    # Refused then accepted within one batch: nothing refused is stored.
    regs.apply([regs.AuthRefused("8001", "10.0.0.7:5060", "wrong password", T0),
                regs.AuthAccepted("8001", "10.0.0.7:5060", T0)], "asterisk")
    assert RegistrationFailure.select().count() == 0


def test_listing_prunes_old_refusals_strangers_first(runtime, desk):
    regs.apply([regs.AuthRefused("8001", "10.0.0.7:5060", "wrong password", T0),
                regs.AuthRefused("admin", "203.0.113.5:5060", "no such account on the switch",
                                 T0)], "asterisk")
    regs.replace_all([], "asterisk", T0 + timedelta(hours=2))
    assert [f.address for f in RegistrationFailure.select()] == ["10.0.0.7:5060"]
    regs.replace_all([], "asterisk", T0 + timedelta(days=8))
    assert RegistrationFailure.select().count() == 0


def test_expired_registration_counts_as_not_registered(runtime, desk):
    regs.apply([seen("8001", "10.0.0.7:5060", expires_at=T0 + timedelta(seconds=60))],
               "asterisk")
    device = Device.get_by_id(desk.id)
    assert regs.view(device, now=T0 + timedelta(seconds=30)).state == "registered"
    assert regs.view(device, now=T0 + timedelta(seconds=61)).state == "unregistered"


def test_listing_replaces_what_it_no_longer_shows_but_keeps_newer_events(runtime, desk, desk2):
    regs.apply([seen("8001", "10.0.0.7:5060"), seen("8002", "10.0.0.8:5060"),
                seen("9999", "10.0.0.9:5060", at=T0 + timedelta(seconds=30))], "asterisk")
    regs.apply([seen("8002", "10.0.0.8:5060")], "freeswitch")
    # The listing was asked for at T0+10 s and shows only 8001; 9999 registered after.
    regs.replace_all([seen("8001", "10.0.0.7:5060", at=T0 + timedelta(seconds=10))],
                     "asterisk", T0 + timedelta(seconds=10))
    left = sorted((r.switch, r.account) for r in Registration.select())
    assert left == [("asterisk", "8001"), ("asterisk", "9999"), ("freeswitch", "8002")]


def test_views_of_many_phones_take_a_fixed_number_of_queries(runtime):
    devices = [make_device(runtime, mac=f"00:15:65:00:10:{i:02x}", extension=str(8100 + i))
               for i in range(30)]
    regs.apply([seen(str(8100 + i), f"10.0.1.{i}:5060") for i in range(30)], "asterisk")
    db = current_database()
    calls = {"n": 0}
    original = db.execute_sql

    def counting(*args, **kw):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        return original(*args, **kw)

    db.execute_sql = counting
    try:
        result = regs.views(devices)
    finally:
        db.execute_sql = original
    assert all(v.state == "registered" for v in result.values())
    assert calls["n"] <= 4


# -- the worker: confirmed provisioning ----------------------------------------------------

def confirm_config(config: Config) -> Config:
    return dataclasses.replace(
        config, provisioning=dataclasses.replace(config.provisioning, fetch_timeout_seconds=60),
        worker=WorkerConfig(reconcile_max_requeues=2, reconcile_backoff_max_seconds=3600))


def fetched(device: Device, at: datetime) -> None:
    Device.update(fetched_version=Device.config_version, last_fetch_at=at).where(
        Device.id == device.id).execute()


def test_no_watcher_no_registration_rule(runtime, alice, desk):
    cfg = confirm_config(runtime.config)
    runtime.service.login(desk.id, "101", "1234", ctx())
    fetched(desk, T0)
    assert confirm.check(cfg, T0 + timedelta(hours=1)) == confirm.ConfirmResult()
    health.report(regs.COMPONENT, "up", now=T0 - timedelta(hours=1))  # stale heartbeat
    assert not regs.watching(T0 + timedelta(hours=1))
    assert confirm.check(cfg, T0 + timedelta(hours=1)).requeued == 0


def test_fetched_but_registered_as_the_old_account_gets_the_notify_again(runtime, alice, desk):
    cfg = confirm_config(runtime.config)
    svc = HotdeskService(runtime.db, cfg, clock=Clock(T0))
    svc.login(desk.id, "101", "1234", ctx())
    sender = Recorder()
    drain_once(sender, cfg.notify, "test", now=T0)
    fetched(desk, T0 + timedelta(seconds=2))
    regs.apply([seen("8001", "10.0.0.7:5060")], "asterisk")
    now = T0 + timedelta(seconds=100)
    health.report(regs.COMPONENT, "up", now=now)
    result = confirm.check(cfg, now)
    assert (result.requeued, result.confirmed) == (1, 0)
    row = OutboxNotify.select().order_by(OutboxNotify.id.desc()).first()
    # Addressed to the registration the phone really has: 8001 at its contact.
    assert (row.endpoint, row.contact_uri, row.config_version) == (
        "8001", "sip:8001@10.0.0.7:5060;transport=UDP", 2)
    audit = AuditEvent.get(AuditEvent.action == "notify_requeued")
    assert "wrong account" in audit.detail
    # Pending: nothing more. Sent, then the doubled wait, then the bound.
    assert confirm.check(cfg, now + timedelta(seconds=1)).requeued == 0
    drain_once(sender, cfg.notify, "test", now=now)
    assert confirm.check(cfg, now + timedelta(seconds=119)).requeued == 0
    health.report(regs.COMPONENT, "up", now=now + timedelta(seconds=121))
    assert confirm.check(cfg, now + timedelta(seconds=121)).requeued == 1
    drain_once(sender, cfg.notify, "test", now=now + timedelta(seconds=121))
    later = now + timedelta(days=1)
    health.report(regs.COMPONENT, "up", now=later)
    result = confirm.check(cfg, later)
    assert (result.requeued, result.gave_up) == (0, 1)
    assert confirm.check(cfg, later).gave_up == 0  # flagged once per version
    # The phone registers as the user at last: confirmed.
    regs.apply([seen("101", "10.0.0.7:5060", at=later)], "asterisk")
    assert confirm.check(cfg, later).confirmed == 1


def test_credentials_rejected_is_flagged_once_and_not_re_sent(runtime, alice, desk, caplog):
    cfg = confirm_config(runtime.config)
    svc = HotdeskService(runtime.db, cfg, clock=Clock(T0))
    svc.login(desk.id, "101", "1234", ctx())
    drain_once(Recorder(), cfg.notify, "test", now=T0)
    fetched(desk, T0 + timedelta(seconds=2))
    regs.apply([regs.AuthRefused("101", "10.0.0.7:5060", "wrong password",
                                 T0 + timedelta(seconds=3))], "asterisk")
    now = T0 + timedelta(seconds=100)
    health.report(regs.COMPONENT, "up", now=now)
    before = OutboxNotify.select().count()
    assert confirm.check(cfg, now).rejected == 1
    assert confirm.check(cfg, now).rejected == 0
    assert OutboxNotify.select().count() == before
    event = AuditEvent.get(AuditEvent.action == "credentials_rejected")
    assert "wrong password" in event.detail and "alice-secret" not in event.detail
    assert any("refused the phone's registration as 101" in r.getMessage()
               for r in caplog.records)


def test_worker_tick_runs_the_registration_check(runtime, alice, desk):
    cfg = confirm_config(runtime.config)
    svc = HotdeskService(runtime.db, cfg, clock=Clock(T0))
    svc.login(desk.id, "101", "1234", ctx())
    drain_once(Recorder(), cfg.notify, "test", now=T0)
    fetched(desk, T0)
    now = T0 + timedelta(seconds=100)
    health.report(regs.COMPONENT, "up", now=now)
    result = worker.tick(svc, cfg, now=now)
    assert result.unconfirmed == 1
    assert "registration_requeued=1" in result.summary()


# -- upgrade ----------------------------------------------------------------------------

def test_upgrade_from_the_previous_schema_keeps_data(database_url):
    db = open_database(database_url)  # empty: the fixture made a new file or dropped all
    # The schema version just before this migration, wherever a merge puts it.
    previous = MIGRATIONS[:MIGRATIONS.index(_v5_create_registrations)]
    # The schema as the previous version made it: no registration tables.
    with db.atomic():
        from hotdesk.store.models import SchemaVersion
        old = [m for m in ALL_MODELS if m not in (Registration, RegistrationFailure)]
        db.create_tables(old)
        for n in range(1, len(previous) + 1):
            SchemaVersion.create(version=n)
    from hotdesk.admin.inventory import DeviceSpec, add_device, default_tenant
    from hotdesk.store.db import ensure_default_tenant
    ensure_default_tenant("default")
    add_device(db, default_tenant(), DeviceSpec(mac="00:15:65:00:00:99", extension="8009",
                                                sip_password="idle-8009"))
    assert not db.table_exists("registration")
    assert upgrade(db) == len(MIGRATIONS) == schema_version(db)
    assert Device.get().idle_extension == "8009"
    regs.apply([seen("8009", "10.0.0.9:5060")], "asterisk")
    assert Registration.get().device_id == Device.get().id
    db.close()


def test_the_users_own_phone_elsewhere_is_not_taken_for_the_hot_desk(runtime, alice, desk):
    # The login call came from the hot desk's address (identify_device records it).
    Device.update(last_address="10.0.0.7:5060").where(Device.id == desk.id).execute()
    runtime.service.login(desk.id, "101", "1234", ctx("8001", "10.0.0.7:5060"))
    # Alice's own desk phone stays registered as 101 from another address.
    regs.apply([seen("101", "10.0.0.50:5060"), seen("8001", "10.0.0.7:5060")], "asterisk")
    assert Registration.get(Registration.address == "10.0.0.50:5060").device_id is None
    assert regs.view(Device.get_by_id(desk.id)).state == "mismatch"


# -- the writer: bounded, batched ---------------------------------------------------------

def test_writer_batches_bounds_its_buffer_and_reports_the_listing(runtime, desk, desk2):
    from hotdesk.settings import RegistrationsConfig
    from hotdesk.switch.registration_writer import RegistrationWriter

    told: list[tuple[bool, str]] = []
    writer = RegistrationWriter("asterisk", RegistrationsConfig(buffer_max=3, batch_max=2,
                                                                flush_seconds=0.05),
                                on_listing=lambda up, detail: told.append((up, detail)))
    # Not started yet: the buffer keeps the newest 3 of 5 events.
    for i in range(5):
        writer.put(seen("8001", f"10.0.0.{i}:5060"))
    assert writer.dropped == 2
    writer.listing([seen("8002", "10.0.0.8:5060")], T0)
    writer.start()
    try:
        assert writer.flush(10.0)
    finally:
        writer.stop()
    assert told == [(True, "1 contact(s) listed")]
    rows = sorted(r.address for r in Registration.select())
    assert rows == ["10.0.0.2:5060", "10.0.0.3:5060", "10.0.0.4:5060", "10.0.0.8:5060"]
    assert writer.written == 3


def apply_failing_once(monkeypatch, exc: Exception) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """The writer's first batch raises ``exc``; later ones are stored. Counts the calls."""
    from hotdesk.switch import registration_writer

    calls = {"n": 0}
    real_apply = regs.apply

    def failing(*args, **kw):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise exc
        return real_apply(*args, **kw)

    monkeypatch.setattr(registration_writer.regs, "apply", failing)
    return calls


def test_writer_keeps_events_while_the_database_fails(runtime, desk, monkeypatch):
    from peewee import OperationalError

    from hotdesk.settings import RegistrationsConfig
    from hotdesk.switch import registration_writer

    calls = apply_failing_once(monkeypatch, OperationalError("database is locked"))
    writer = registration_writer.RegistrationWriter(
        "asterisk", RegistrationsConfig(flush_seconds=0.05))
    writer.put(seen("8001", "10.0.0.7:5060"))
    writer.start()
    try:
        deadline = datetime.now() + timedelta(seconds=10)
        while writer.written < 1 and datetime.now() < deadline:
            writer.flush(0.5)
    finally:
        writer.stop()
    assert calls["n"] >= 2 and Registration.get().address == "10.0.0.7:5060"


def test_writer_survives_an_unexpected_error(runtime, desk, monkeypatch, caplog):
    from hotdesk.settings import RegistrationsConfig
    from hotdesk.switch import registration_writer

    calls = apply_failing_once(monkeypatch, KeyError("a bug"))
    writer = registration_writer.RegistrationWriter(
        "asterisk", RegistrationsConfig(flush_seconds=0.05))
    writer.start()
    try:
        writer.put(seen("8001", "10.0.0.7:5060"))
        deadline = datetime.now() + timedelta(seconds=10)
        while calls["n"] < 1 and datetime.now() < deadline:
            writer.flush(0.2)
        writer.put(seen("8001", "10.0.0.8:5060"))  # the thread is still there
        while writer.written < 1 and datetime.now() < deadline:
            writer.flush(0.5)
    finally:
        writer.stop()
    assert writer.written == 1 and Registration.get().address == "10.0.0.8:5060"
    assert any("could not be stored" in r.getMessage() for r in caplog.records)
