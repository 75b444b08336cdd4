"""The switch-neutral rules, called directly (the adapters' tests drive them over the wire)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from hotdesk.calls.service import CallContext, HotdeskService, LoginResult, Outcome, SwitchPin
from hotdesk.settings import PolicyConfig
from hotdesk.store.models import AuditEvent, Device, LoginAttempt, OutboxNotify, Session


def ctx(endpoint: str = "8001", source: str = "192.0.2.10:5060") -> CallContext:
    return CallContext(switch="asterisk", call_id="c1", endpoint=endpoint, source=source)


def active(device: Device) -> list[Session]:
    return list(Session.select().where((Session.device == device) & Session.ended_at.is_null()))


def test_login_creates_session_audit_and_outbox_to_idle_registration(runtime, alice, desk):
    svc = runtime.service
    assert svc.login(desk.id, "101", "1234", ctx()).outcome is Outcome.LOGGED_IN
    [session] = active(desk)
    assert session.user_id == alice.id
    row = OutboxNotify.get(OutboxNotify.device == desk)
    # The phone is still registered as its idle extension when the NOTIFY goes out.
    assert row.endpoint == "8001"
    # ... at exactly the address the call came from (stored by the login itself).
    assert row.contact_uri == "sip:8001@192.0.2.10:5060"
    assert row.event == "check-sync;reboot=false"
    assert Device.get_by_id(desk.id).config_version == 2
    assert AuditEvent.select().where(AuditEvent.action == "login").count() == 1


def test_identify_only_reads_and_the_login_records_the_address(runtime, alice, desk):
    call = ctx(source="192.0.2.10:5062")
    device = runtime.service.identify_device(call)
    assert device.id == desk.id
    assert Device.get_by_id(desk.id).last_address == ""  # no write outside a transaction
    runtime.service.login(desk.id, "101", "1234", call)
    assert Device.get_by_id(desk.id).last_address == "192.0.2.10:5062"


def test_logout_call_records_the_address_its_notify_goes_to(runtime, alice, desk):
    runtime.service.login(desk.id, "101", "1234", ctx(source="192.0.2.10:5062"))
    assert runtime.service.logout(desk.id, source="192.0.2.10:5070") is Outcome.LOGGED_OUT
    row = OutboxNotify.select().order_by(OutboxNotify.id.desc()).first()
    assert row.contact_uri == "sip:101@192.0.2.10:5070"


def test_switch_pin_decides_and_a_missing_one_is_a_wrong_pin(runtime, alice, desk, caplog):
    svc = runtime.service
    # The switch's PIN decides, not hotdesk's hash (1234): 4321 is right, 1234 wrong.
    assert svc.login(desk.id, "101", "1234", ctx(), SwitchPin("4321")).outcome \
        is Outcome.WRONG_PIN
    result = svc.login(desk.id, "101", "0000", ctx(), SwitchPin(None))
    assert result == LoginResult(Outcome.WRONG_PIN, pin_failed=True, locked_out=False)
    assert "user 101 has no voicemail PIN on the switch" in caplog.text
    assert "0000" not in caplog.text and "4321" not in caplog.text
    assert LoginAttempt.select().where(LoginAttempt.result == "wrong_pin").count() == 2
    assert svc.login(desk.id, "101", "4321", ctx(), SwitchPin("4321")).outcome \
        is Outcome.LOGGED_IN


def test_the_failure_that_locks_the_user_out_says_so(runtime, alice, desk):
    results = [runtime.service.login(desk.id, "101", "0000", ctx()) for _ in range(5)]
    assert [r.locked_out for r in results] == [False] * 4 + [True]
    assert all(r.pin_failed for r in results)


def test_wrong_pin_unknown_and_not_enabled_are_distinct(runtime, alice, desk):
    from hotdesk.admin.inventory import add_user, default_tenant
    add_user(runtime.db, default_tenant(), "103", pin="1111", hotdesk=False)
    svc = runtime.service
    assert svc.login(desk.id, "101", "9999", ctx()).outcome is Outcome.WRONG_PIN
    assert svc.login(desk.id, "555", "1234", ctx()).outcome is Outcome.UNKNOWN_EXTENSION
    assert svc.login(desk.id, "103", "1111", ctx()).outcome is Outcome.NOT_ENABLED
    assert active(desk) == []


def test_lockout_after_five_failures_then_expires(runtime, alice, desk):
    now = [runtime.service.clock()]
    svc = HotdeskService(runtime.db, runtime.config, clock=lambda: now[0])
    for _ in range(5):
        assert svc.login(desk.id, "101", "0000", ctx()).outcome is Outcome.WRONG_PIN
        now[0] += timedelta(seconds=10)
    assert svc.login(desk.id, "101", "1234", ctx()).outcome is Outcome.LOCKED
    assert AuditEvent.select().where(AuditEvent.action == "lockout").count() == 1
    now[0] += timedelta(minutes=16)
    assert svc.login(desk.id, "101", "1234", ctx()).outcome is Outcome.LOGGED_IN


def test_auto_logout_moves_user_and_reprovisions_old_phone(runtime, alice, desk, desk2):
    svc = runtime.service
    assert svc.login(desk.id, "101", "1234",
                     ctx("8001", "192.0.2.10:5060")).outcome is Outcome.LOGGED_IN
    Device.update(last_address="192.0.2.10:5060").where(Device.id == desk.id).execute()
    assert svc.login(desk2.id, "101", "1234", ctx("8002")).outcome is Outcome.LOGGED_IN
    assert active(desk) == [] and len(active(desk2)) == 1
    old = Session.get(Session.device == desk)
    assert old.end_reason == "moved"
    # Desk 1 was registered as 101: its NOTIFY targets exactly that phone's contact.
    row = (OutboxNotify.select().where(OutboxNotify.device == desk)
           .order_by(OutboxNotify.id.desc()).get())
    assert (row.endpoint, row.contact_uri) == ("101", "sip:101@192.0.2.10:5060")


def test_deny_policy(runtime, alice, desk, desk2):
    cfg = dataclasses.replace(runtime.config,
                              policy=PolicyConfig(multiple_login="deny"))
    svc = HotdeskService(runtime.db, cfg)
    assert svc.login(desk.id, "101", "1234", ctx()).outcome is Outcome.LOGGED_IN
    assert svc.login(desk2.id, "101", "1234", ctx("8002")).outcome is Outcome.ALREADY_LOGGED_IN
    assert active(desk2) == []


def test_roaming_replaces_other_user(runtime, alice, bob, desk):
    svc = runtime.service
    svc.login(desk.id, "101", "1234", ctx())
    assert svc.login(desk.id, "102", "4321", ctx()).outcome is Outcome.LOGGED_IN
    [session] = active(desk)
    assert session.user_id == bob.id
    assert Session.get(Session.user == alice).end_reason == "replaced"


def test_logout_and_logout_when_idle(runtime, alice, desk):
    svc = runtime.service
    assert svc.logout(desk.id) is Outcome.NOT_LOGGED_IN
    svc.login(desk.id, "101", "1234", ctx())
    assert svc.logout(desk.id) is Outcome.LOGGED_OUT
    row = OutboxNotify.select().order_by(OutboxNotify.id.desc()).first()
    assert row.endpoint == "101"


def test_identify_several_sessions_by_source(runtime, alice, desk, desk2):
    cfg = dataclasses.replace(runtime.config, policy=PolicyConfig(multiple_login="allow"))
    svc = HotdeskService(runtime.db, cfg)
    svc.login(desk.id, "101", "1234", ctx("8001", "192.0.2.10:5060"))
    svc.login(desk2.id, "101", "1234", ctx("8002", "192.0.2.11:5060"))
    assert svc.identify_device(ctx("101", "192.0.2.11:5060")).id == desk2.id
    assert svc.identify_device(ctx("101", "192.0.2.99:5060")) is Outcome.AMBIGUOUS_DEVICE
    assert svc.identify_device(ctx("101", "")) is Outcome.AMBIGUOUS_DEVICE


def test_database_refuses_two_active_sessions_on_one_device(runtime, alice, bob, desk):
    import pytest
    from peewee import IntegrityError

    Session.create(tenant=desk.tenant, device=desk, user=alice)
    with pytest.raises(IntegrityError), runtime.db.atomic():
        Session.create(tenant=desk.tenant, device=desk, user=bob)


def test_notify_of_the_calling_phone_waits_for_the_confirmation_prompt(runtime, alice, desk,
                                                                      desk2):
    cfg = dataclasses.replace(runtime.config, notify=dataclasses.replace(
        runtime.config.notify, call_grace_seconds=2.0))
    now = runtime.service.clock()
    svc = HotdeskService(runtime.db, cfg, clock=lambda: now)
    svc.login(desk.id, "101", "1234", ctx())
    svc.login(desk2.id, "101", "1234", ctx("8002"))
    rows = {(r.device_id, r.endpoint): r.next_attempt_at for r in OutboxNotify.select()}
    # The phones the caller is on wait out the prompt; the phone logged out elsewhere
    # (nobody on a call there) is told at once.
    assert rows[(desk.id, "8001")] == now + timedelta(seconds=2)
    assert rows[(desk2.id, "8002")] == now + timedelta(seconds=2)
    assert rows[(desk.id, "101")] == now
    svc.logout(desk2.id, reason="admin")
    assert OutboxNotify.select().order_by(OutboxNotify.id.desc()).get().next_attempt_at == now
