"""Every rule over the wire: fake FreeSWITCH -> outbound ESL server -> core -> DB -> outbox
-> inbound ESL -> fake FreeSWITCH."""

from __future__ import annotations

import dataclasses
import socket
import time

import pytest

from hotdesk.admin.inventory import DeviceSpec, add_device, add_user
from hotdesk.runtime import Runtime
from hotdesk.settings import PolicyConfig
from hotdesk.store.models import Device, OutboxNotify, Session, Tenant
from tests.conftest import make_device
from tests.drivers.freeswitch import make_driver
from tests.fakes.freeswitch import CallSpec, FakeInboundServer, place_call


def active(device) -> list[Session]:
    return list(Session.select().where((Session.device == device) & Session.ended_at.is_null()))


@pytest.fixture
def driver(runtime, tmp_path):
    with make_driver(runtime, tmp_path) as d:
        yield d


def test_login_ok(driver, alice, desk):
    rec = driver.call("login", "8001", "101", ["1234"])
    assert rec.result == "ok"
    assert rec.prompts == ["enter_pin", "login_ok"]
    assert rec.hung_up
    assert [s.user_id for s in active(desk)] == [alice.id]
    # The call told us where the phone is: the NOTIFY targets exactly that contact.
    assert driver.notifies(1) == [("8001", "sip:8001@127.0.0.1:5072", "check-sync;reboot=false")]
    apps = [a for a, _ in driver.last.executed()]
    assert apps == ["answer", "play_and_get_digits", "set", "playback", "hangup"]
    pagd = dict(driver.last.executed())["play_and_get_digits"]
    assert pagd.startswith("1 8 1 200 # hotdesk/enter_pin.wav silence_stream://250 hotdesk_pin")
    assert "None" not in pagd
    assert [c for c, _ in driver.last.commands][:3] == ["connect", "myevents", "linger 5"]
    assert driver.last.commands[-1][0] == "exit"
    assert Device.get_by_id(desk.id).last_address == "127.0.0.1:5072"


def test_pin_keyed_without_pound_arrives_as_timeout_with_digits(driver, alice, desk):
    # A real FreeSWITCH reports read_result=timeout (digits kept) when the caller stops
    # keying before max digits, and success only when # or the maximum ended the entry.
    rec = driver.call("login", "8001", "101", ["1234"])
    assert (rec.result, driver.last.read_result) == ("ok", "timeout")
    driver.call("logout", "101", source="127.0.0.1:5072")
    rec = driver.call("login", "8001", "101", ["1234#"])
    assert (rec.result, driver.last.read_result) == ("ok", "success")


def test_missing_prompt_file_is_named_in_the_log(driver, alice, desk, caplog):
    spec = CallSpec(endpoint="8001", extension="101", digits=["1234"] * 3,
                    source="127.0.0.1:5072", domain="127.0.0.1", missing_prompt=True)
    served = driver.service.server.calls_served
    call = place_call(driver.service.server.address, spec)
    deadline = time.monotonic() + 10
    while driver.service.server.calls_served <= served and time.monotonic() < deadline:
        time.sleep(0.005)
    assert call.read_result is None
    assert driver.record(call).result == "no_pin"
    assert active(desk) == []
    assert "is the sound file 'hotdesk/enter_pin.wav' installed" in caplog.text


def test_wrong_pin_three_times(driver, alice, desk):
    rec = driver.call("login", "8001", "101", ["1111", "2222", "3333"])
    assert rec.result == "wrong_pin"
    assert rec.prompts == ["enter_pin", "wrong_pin", "enter_pin", "wrong_pin", "enter_pin",
                           "wrong_pin"]
    assert active(desk) == []


def test_pin_timeout_is_no_pin(driver, alice, desk):
    rec = driver.call("login", "8001", "101", ["", "", ""])
    assert rec.result == "no_pin"
    assert active(desk) == []


def test_lockout(driver, alice, desk):
    driver.call("login", "8001", "101", ["1111", "2222", "3333"])
    driver.call("login", "8001", "101", ["4444", "5555"])
    rec = driver.call("login", "8001", "101", ["1234"])
    assert rec.result == "locked"
    assert rec.prompts == ["locked"]
    assert active(desk) == []


def test_user_not_enabled_and_unknown_extension(driver, runtime, desk):
    from hotdesk.admin.inventory import default_tenant
    add_user(runtime.db, default_tenant(), "103", pin="1111", hotdesk=False)
    assert driver.call("login", "8001", "103", ["1111"]).result == "not_enabled"
    rec = driver.call("login", "8001", "555", ["1111"])
    assert (rec.result, rec.prompts) == ("unknown_extension", ["unknown_extension"])


def test_roam_over_another_user(driver, alice, bob, desk):
    assert driver.call("login", "8001", "101", ["1234"]).result == "ok"
    # The phone is now registered as 101; bob logs in over alice from it.
    assert driver.call("login", "101", "102", ["4321"]).result == "ok"
    assert [s.user_id for s in active(desk)] == [bob.id]
    got = driver.notifies(2)
    assert [g[0] for g in got] == ["8001", "101"]


def test_auto_logout_elsewhere_notifies_other_phone_at_its_contact(driver, alice, desk, desk2):
    assert driver.call("login", "8001", "101", ["1234"], source="192.0.2.10:5060").result == "ok"
    assert driver.call("login", "8002", "101", ["1234"], source="192.0.2.11:5060").result == "ok"
    assert active(desk) == [] and len(active(desk2)) == 1
    got = driver.notifies(3)
    assert ("101", "sip:101@192.0.2.10:5060", "check-sync;reboot=false") in got
    uri_form = [dict(h) for h in driver.fake.notifies if "contact-uri" in dict(h)]
    assert len(uri_form) == 3
    assert {tuple(h) for h in uri_form} == {("profile", "contact-uri", "to-uri", "from-uri",
                                             "event-string", "content-type")}


def test_deny_policy(runtime, tmp_path, alice, desk, desk2):
    rt = Runtime(dataclasses.replace(runtime.config,
                                     policy=PolicyConfig(multiple_login="deny")),
                 runtime.db, runtime.service)
    with make_driver(rt, tmp_path) as d:
        assert d.call("login", "8001", "101", ["1234"]).result == "ok"
        rec = d.call("login", "8002", "101", ["1234"])
        assert rec.result == "already_logged_in"
        assert active(desk2) == []


def test_logout_and_logout_when_idle(driver, alice, desk):
    rec = driver.call("logout", "8001")
    assert (rec.result, rec.prompts) == ("not_logged_in", ["not_logged_in"])
    assert driver.call("login", "8001", "101", ["1234"]).result == "ok"
    rec = driver.call("logout", "101")
    assert (rec.result, rec.prompts) == ("logged_out", ["logout_ok"])
    assert active(desk) == []
    assert [n[0] for n in driver.notifies(2)] == ["8001", "101"]


def test_hangup_mid_pin_leaves_nothing_and_server_serves_next(driver, alice, desk):
    rec = driver.call("login", "8001", "101", ["1234"], hangup_at="collect")
    assert rec.result is None
    assert active(desk) == []
    sent = [a for a, _ in driver.last.executed()]
    assert sent == ["answer", "play_and_get_digits"]  # no media after the hang-up
    assert driver.last.commands[-1][0] == "exit"
    assert driver.service.server.active_calls() == 0
    assert driver.call("login", "8001", "101", ["1234"]).result == "ok"


def test_switch_disconnect_mid_call(driver, alice, desk):
    rec = driver.call("login", "8001", "101", ["1234"], hangup_at="disconnect")
    assert rec.result is None
    assert active(desk) == []
    assert driver.service.server.active_calls() == 0
    assert driver.call("login", "8001", "101", ["1234"]).result == "ok"


def test_garbage_on_the_socket(driver, alice, desk):
    for junk in (b"HELLO\x00\xff garbage without colon\n\n", b"Content-Length: -5\n\n",
                 b"\n\n\n", b"Content-Type: command/reply\nReply-Text: -ERR no\n\n"):
        served = driver.service.server.calls_served
        with socket.create_connection(driver.service.server.address, timeout=5) as s:
            assert s.recv(100).startswith(b"connect")
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(5)
            while s.recv(1000):
                pass
        deadline = time.monotonic() + 5
        while driver.service.server.calls_served == served and time.monotonic() < deadline:
            time.sleep(0.01)
        assert driver.service.server.calls_served == served + 1
    assert driver.call("login", "8001", "101", ["1234"]).result == "ok"


def test_inbound_down_then_up_delivers_queued_notify(runtime, tmp_path, alice, desk):
    with make_driver(runtime, tmp_path) as d:
        port = d.fake.address[1]
        d.fake.shutdown()
        deadline = time.monotonic() + 5
        while d.service.inbound.connected and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not d.service.inbound.connected
        assert d.call("login", "8001", "101", ["1234"]).result == "ok"
        time.sleep(0.2)  # several drain rounds while the switch is down
        row = OutboxNotify.get(OutboxNotify.device == desk)
        assert (row.status, row.attempts) == ("pending", 0)
        fake2 = FakeInboundServer(port=port)
        fake2.start()
        try:
            got = fake2.wait_notifies(1, timeout=10)
            assert [dict(h)["contact-uri"] for h in got] == ["sip:8001@127.0.0.1:5072"]
            deadline = time.monotonic() + 5
            while OutboxNotify.get_by_id(row.id).status != "sent" and time.monotonic() < deadline:
                time.sleep(0.02)
            assert OutboxNotify.get_by_id(row.id).status == "sent"
        finally:
            fake2.stop()


def test_the_call_wakes_the_drain_for_its_notify(runtime, tmp_path, alice, desk):
    """The NOTIFY leaves as soon as the login is committed, not at the drain's next poll
    (here a minute away)."""
    with make_driver(runtime, tmp_path, poll_seconds=60.0) as d:
        time.sleep(0.3)  # the drain's first round, at start, is over: it now sleeps
        assert d.fake.notifies == []
        assert d.call("login", "8001", "101", ["1234"]).result == "ok"
        assert d.notifies(1, timeout=10) == [
            ("8001", "sip:8001@127.0.0.1:5072", "check-sync;reboot=false")]


def test_wrong_esl_password_keeps_retrying_and_queues(runtime, tmp_path, alice, desk, caplog):
    with make_driver(runtime, tmp_path, password="wrong") as d:
        deadline = time.monotonic() + 5
        while d.fake.auth_failures < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert d.fake.auth_failures >= 2
        assert not d.service.inbound.connected
        assert d.call("login", "8001", "101", ["1234"]).result == "ok"
        assert d.fake.notifies == []
        assert OutboxNotify.get(OutboxNotify.device == desk).status == "pending"
    refused = [r for r in caplog.records if "refused the Event Socket password" in r.message]
    # One line per state change and connection (NOTIFYs, registrations, emergency calls),
    # not per retry.
    labels = ["(registrations)", "(emergency calls)"]
    assert len([r for r in refused if not any(x in r.message for x in labels)]) == 1
    for label in labels:
        assert len([r for r in refused if label in r.message]) == 1


def test_multi_tenant_domain_selects_tenant(driver, runtime, alice, desk):
    tenant_b = Tenant.create(name="B", sip_domain="b.example")
    carol = add_user(runtime.db, tenant_b, "101", pin="7777", hotdesk=True)
    desk_b = add_device(runtime.db, tenant_b, DeviceSpec(mac="00:15:65:bb:bb:01",
                                                         extension="8001",
                                                         sip_password="idle-b"))
    driver.voicemail = {"101@b.example": "7777", "101@127.0.0.1": "1234"}
    rec = driver.call("login", "8001", "101", ["7777"], domain="b.example")
    assert rec.result == "ok"
    assert [s.user_id for s in active(desk_b)] == [carol.id]
    assert active(desk) == []
    assert driver.notifies(1) == [("8001", "sip:8001@127.0.0.1:5072", "check-sync;reboot=false")]
    assert dict(driver.fake.notifies[0])["to-uri"] == "sip:8001@b.example"


def test_voicemail_pin_read_live_over_the_call_socket(driver, alice, desk):
    # The directory's vm-password decides (5555), not hotdesk's own PIN (1234), and a
    # PIN changed in the directory works at the next try.
    driver.voicemail = {"101@127.0.0.1": "5555"}
    assert driver.call("login", "8001", "101", ["1234"]).result == "wrong_pin"
    assert driver.last is not None
    assert ("api user_data 101@127.0.0.1 param vm-password", {}) in driver.last.commands
    rec = driver.call("login", "8001", "101", ["5555"])
    assert rec.result == "ok"


def test_user_without_vm_password_hears_wrong_pin(driver, alice, desk, caplog):
    driver.voicemail = {}
    rec = driver.call("login", "8001", "101", ["1234"])
    assert rec.result == "wrong_pin"
    assert "user 101 has no voicemail PIN on the switch" in caplog.text
    assert "1234" not in caplog.text


def test_unknown_phone(driver, alice):
    rec = driver.call("login", "7777", "101", ["1234"])
    assert rec.result == "not_hotdesk_phone"


def test_concurrent_calls(driver, runtime, alice):
    import threading
    for i in range(10):
        make_device(runtime, mac=f"00:15:65:00:10:{i:02x}", extension=f"81{i:02d}")
        add_user(runtime.db, alice.tenant, f"2{i:02d}", pin="1234", hotdesk=True)
    directory = {f"2{i:02d}@127.0.0.1": "1234" for i in range(10)}
    results: list[str | None] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        call = place_call(driver.service.server.address,
                          CallSpec(endpoint=f"81{i:02d}", extension=f"2{i:02d}",
                                   digits=["1234"], vm_passwords=directory))
        with lock:
            results.append(driver.record(call).result)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == ["ok"] * 10
