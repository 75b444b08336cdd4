"""Every rule over the wire: FakeAsterisk -> FastAGI server -> core -> DB -> outbox ->
AMI sender -> FakeAMI (SQLite and PostgreSQL through the shared fixtures)."""

from __future__ import annotations

import socket
import time

import pytest

from hotdesk.admin.inventory import DeviceSpec, add_device, add_user, default_tenant
from hotdesk.store.models import Device, LoginAttempt, OutboxNotify, Session, Tenant, User
from tests.drivers.asterisk import make_driver

EVENT = "check-sync;reboot=false"
PHONE1 = "127.0.0.1:5071"
PHONE2 = "127.0.0.1:5072"


@pytest.fixture
def driver(runtime, tmp_path):
    with make_driver(runtime, tmp_path) as drv:
        yield drv


def active(device):
    return list(Session.select().where((Session.device == device) & Session.ended_at.is_null()))


def test_login_ok_sets_result_creates_session_and_notifies_contact_uri(driver, alice, desk):
    rec = driver.call("login", "8001", "101", ["1234"], source=PHONE1)
    assert rec.result == "ok"
    assert rec.prompts == ["enter_pin", "login_ok"]
    assert rec.hung_up
    assert rec.commands[0] == "ANSWER"
    enter_pin = driver.runtime.config.prompts_asterisk["enter_pin"]
    assert rec.commands[1] == f"GET DATA {enter_pin} 100 8"
    [session] = active(desk)
    assert session.user_id == alice.id
    # The phone is still registered as its idle endpoint: exactly that contact is notified.
    assert driver.notifies(1) == [("8001", f"sip:8001@{PHONE1}", EVENT)]
    assert driver.ami.actions[-1][0] == ("Action", "PJSIPNotify")
    assert ("URI", f"sip:8001@{PHONE1}") in driver.ami.actions[-1]
    _wait_sent(1)


def test_login_without_source_notifies_the_idle_endpoint(driver, alice, desk):
    assert driver.call("login", "8001", "101", ["1234"]).result == "ok"
    assert driver.notifies(1) == [("8001", "", EVENT)]
    assert ("Endpoint", "8001") in driver.ami.actions[-1]


def test_wrong_pin_three_times(driver, alice, desk):
    rec = driver.call("login", "8001", "101", ["1111", "2222", "3333"], source=PHONE1)
    assert rec.result == "wrong_pin"
    assert sum(c.startswith("GET DATA") for c in rec.commands) == 3
    assert rec.prompts == ["enter_pin", "wrong_pin", "enter_pin", "wrong_pin", "enter_pin",
                           "wrong_pin"]
    assert active(desk) == []
    assert LoginAttempt.select().where(LoginAttempt.result == "wrong_pin").count() == 3


def test_pin_timeout_every_try_is_no_pin(driver, alice, desk):
    rec = driver.call("login", "8001", "101", ["", "", ""], source=PHONE1)
    assert rec.result == "no_pin"
    assert rec.prompts[-1] == "no_pin"


def test_lockout_after_five_failures_across_two_calls(driver, alice, desk):
    assert driver.call("login", "8001", "101", ["1", "2", "3"]).result == "wrong_pin"
    rec = driver.call("login", "8001", "101", ["4", "5", "1234"])
    # The fifth failure locks the user: even the right PIN in the same call is refused.
    assert rec.result == "locked"
    assert rec.prompts[-1] == "locked"
    rec = driver.call("login", "8001", "101", ["1234"])
    assert rec.result == "locked"
    assert not any(c.startswith("GET DATA") for c in rec.commands)
    assert active(desk) == []


def test_user_not_enabled(driver, runtime, desk):
    add_user(runtime.db, default_tenant(), "103", pin="1111", hotdesk=False)
    rec = driver.call("login", "8001", "103", ["1111"])
    assert (rec.result, rec.prompts) == ("not_enabled", ["not_enabled"])


def test_unknown_extension(driver, desk):
    rec = driver.call("login", "8001", "555", ["1234"])
    assert (rec.result, rec.prompts) == ("unknown_extension", ["unknown_extension"])


def test_not_a_hotdesk_phone(driver, alice, desk):
    rec = driver.call("login", "9999", "101", ["1234"])
    assert (rec.result, rec.prompts) == ("not_hotdesk_phone", ["not_hotdesk_phone"])
    assert driver.ami.notifies == []


def test_roaming_over_another_user_on_the_same_phone(driver, alice, bob, desk):
    assert driver.call("login", "8001", "101", ["1234"], source=PHONE1).result == "ok"
    # The phone is now registered as 101; Bob logs in on it.
    rec = driver.call("login", "101", "102", ["4321"], source=PHONE1)
    assert rec.result == "ok"
    [session] = active(desk)
    assert session.user_id == bob.id
    assert Session.get(Session.user == alice).end_reason == "replaced"
    assert driver.notifies(2)[-1] == ("101", f"sip:101@{PHONE1}", EVENT)


def test_auto_logout_elsewhere_notifies_the_other_phone(driver, alice, desk, desk2):
    assert driver.call("login", "8001", "101", ["1234"], source=PHONE1).result == "ok"
    driver.notifies(1)  # else the next change to desk 1 supersedes this queued NOTIFY
    assert driver.call("login", "8002", "101", ["1234"], source=PHONE2).result == "ok"
    assert active(desk) == [] and len(active(desk2)) == 1
    got = driver.notifies(3)
    assert ("8001", f"sip:8001@{PHONE1}", EVENT) in got
    # Desk 1 is registered as 101 at PHONE1: only that phone is told to re-sync.
    assert ("101", f"sip:101@{PHONE1}", EVENT) in got
    assert ("8002", f"sip:8002@{PHONE2}", EVENT) in got
    assert len(got) == 3


def test_deny_policy(driver, alice, desk, desk2):
    Tenant.update(multiple_login="deny").execute()
    assert driver.call("login", "8001", "101", ["1234"], source=PHONE1).result == "ok"
    rec = driver.call("login", "8002", "101", ["1234"], source=PHONE2)
    assert (rec.result, rec.prompts[-1]) == ("already_logged_in", "already_logged_in")
    assert len(active(desk)) == 1 and active(desk2) == []


def test_logout_notifies_the_phone_at_its_contact(driver, alice, desk):
    assert driver.call("login", "8001", "101", ["1234"], source=PHONE1).result == "ok"
    rec = driver.call("logout", "101", source=PHONE1)
    assert (rec.result, rec.prompts) == ("logged_out", ["logout_ok"])
    assert active(desk) == []
    assert driver.notifies(2)[-1] == ("101", f"sip:101@{PHONE1}", EVENT)


def test_logout_when_idle(driver, desk):
    rec = driver.call("logout", "8001", source=PHONE1)
    assert (rec.result, rec.prompts) == ("not_logged_in", ["not_logged_in"])


def test_caller_hangs_up_mid_pin_then_next_call_works(driver, alice, desk):
    rec = driver.call("login", "8001", "101", hangup_at="collect", source=PHONE1)
    assert rec.result == "hangup"
    after = rec.commands[rec.commands.index(next(c for c in rec.commands
                                                 if c.startswith("GET DATA"))) + 1:]
    assert after == ["SET VARIABLE HOTDESK_RESULT hangup"]  # no media after the hang-up
    assert rec.hung_up
    assert active(desk) == []
    assert driver.call("login", "8001", "101", ["1234"], source=PHONE1).result == "ok"


def test_switch_disconnects_mid_call_then_next_call_works(driver, alice, desk):
    rec = driver.call("login", "8001", "101", hangup_at="disconnect", source=PHONE1)
    assert rec.result is None
    assert active(desk) == []
    assert driver.call("login", "8001", "101", ["1234"], source=PHONE1).result == "ok"


def test_unknown_script_plays_error(driver, desk):
    transcript = driver.loop.run(driver.asterisk.call("frobnicate", ["1"], "8001", "*99"))
    assert transcript.variables["HOTDESK_RESULT"] == "error"
    sound = driver.runtime.config.prompts_asterisk["error"]
    assert f'STREAM FILE {sound} ""' in transcript.commands


def test_query_string_in_script_name_routes_to_login(driver, alice, desk):
    transcript = driver.loop.run(driver.asterisk.call(
        "login?ext=101", ["101", PHONE1, "8001"], "8001", "*70101", ["1234"]))
    assert transcript.variables["HOTDESK_RESULT"] == "ok"


def test_endpoint_falls_back_to_callerid_without_arg3(driver, alice, desk):
    transcript = driver.loop.run(driver.asterisk.call(
        "login", ["101", PHONE1], "8001", "*70101", ["1234"]))
    assert transcript.variables["HOTDESK_RESULT"] == "ok"


def _raw(port: int, payload: bytes, close: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        if payload:
            s.sendall(payload)
        if close:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while data := s.recv(4096):
                chunks.append(data)
        except (ConnectionResetError, TimeoutError):
            pass
        return b"".join(chunks)


@pytest.mark.parametrize("payload,close", [
    (b"", False),  # connects and sends nothing: dropped after header_timeout
    (b"agi_network: yes\nagi_network_scr", True),  # closes mid-header
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True),  # not FastAGI at all
    (b"agi_network: yes\n" + b"x" * 100_000, False),  # endless line
    (b"\x00\xff\xfe garbage\n\n", True),
])
def test_garbage_and_half_open_clients_do_not_hurt_the_server(driver, alice, desk, payload,
                                                              close):
    port = driver.app.address[1]
    assert _raw(port, payload, close) == b""  # the server says nothing and closes
    assert driver.call("login", "8001", "101", ["1234"], source=PHONE1).result == "ok"


def test_ami_down_then_up_queues_and_delivers(driver, alice, desk):
    port = driver.ami.port
    driver.loop.run(driver.ami.stop())
    _wait(lambda: not driver.app.client.connected.is_set())
    assert driver.call("login", "8001", "101", ["1234"], source=PHONE1).result == "ok"
    time.sleep(0.5)  # several drain rounds while AMI is down
    row = OutboxNotify.get(OutboxNotify.device == desk)
    assert (row.status, row.attempts) == ("pending", 0)
    driver.loop.run(driver.ami.start(port=port))
    assert driver.notifies(1) == [("8001", f"sip:8001@{PHONE1}", EVENT)]
    _wait_sent(1)


def test_ami_shutdown_event_reconnects(driver, alice, desk):
    port = driver.ami.port
    _wait(lambda: driver.app.client.connected.is_set())
    driver.loop.run(driver.ami.shutdown())
    driver.loop.run(driver.ami.start(port=port))
    assert driver.call("login", "8001", "101", ["1234"], source=PHONE1).result == "ok"
    assert len(driver.notifies(1)) == 1
    assert driver.ami.logins_ok >= 2


def test_ami_wrong_secret_is_logged_retried_and_nothing_crashes(runtime, tmp_path, alice, desk,
                                                               caplog):
    with make_driver(runtime, tmp_path, ami_secret="wrong") as drv:
        _wait(lambda: drv.ami.logins_failed >= 3)
        assert drv.call("login", "8001", "101", ["1234"], source=PHONE1).result == "ok"
        row = OutboxNotify.get(OutboxNotify.device == desk)
        assert (row.status, row.attempts) == ("pending", 0)
        assert drv.ami.notifies == []
    refused = [r for r in caplog.records if "refused login" in r.getMessage()]
    # One line per state change and connection (NOTIFYs, registrations, emergency calls),
    # not one per retry.
    labels = ["(registrations)", "(emergency calls)"]
    assert len([r for r in refused if not any(x in r.getMessage() for x in labels)]) == 1
    for label in labels:
        assert len([r for r in refused if label in r.getMessage()]) == 1
    assert "wrong" not in refused[0].getMessage()


def test_pjsipnotify_error_is_retried_with_the_message(runtime, tmp_path, alice, desk):
    with make_driver(runtime, tmp_path, ami_endpoints={"someone-else"}) as drv:
        assert drv.call("login", "8001", "101", ["1234"]).result == "ok"
        _wait(lambda: OutboxNotify.get(OutboxNotify.device == desk).attempts == 1)
        row = OutboxNotify.get(OutboxNotify.device == desk)
        assert row.status == "pending"
        assert row.last_error == "Unable to retrieve endpoint 8001"


def test_device_last_address_recorded_from_the_call(driver, alice, desk):
    driver.call("login", "8001", "101", ["1234"], source=PHONE1)
    assert Device.get_by_id(desk.id).last_address == PHONE1


def _wait(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def _wait_sent(n: int) -> None:
    _wait(lambda: OutboxNotify.select().where(OutboxNotify.status == "sent").count() >= n)


def test_fourth_argument_selects_the_tenant(driver, runtime, alice, desk):
    # One Asterisk, two tenants: the endpoint's set_var=HOTDESK_TENANT=b.example
    # reaches hotdesk as AGI argument 4 (extensions_hotdesk.conf).
    tenant_b = Tenant.create(name="B", sip_domain="b.example")
    carol = add_user(runtime.db, tenant_b, "101", pin="7777", hotdesk=True)
    User.update(voicemail_context="tenant-b").where(User.id == carol.id).execute()
    desk_b = add_device(runtime.db, tenant_b, DeviceSpec(mac="00:15:65:bb:bb:01",
                                                         extension="8001",
                                                         sip_password="idle-b"))
    transcript = driver.loop.run(driver.asterisk.call(
        "login", ["101", PHONE1, "8001", "b.example"], "8001", "*70101", ["7777"],
        voicemail={"101@tenant-b": "7777", "101@default": "1234"}))
    assert transcript.variables["HOTDESK_RESULT"] == "ok"
    assert "GET FULL VARIABLE ${VM_INFO(101@tenant-b,password)}" in transcript.commands
    assert [s.user_id for s in active(desk_b)] == [carol.id]
    assert active(desk) == []
