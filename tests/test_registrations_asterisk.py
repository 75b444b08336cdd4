"""Registrations observed on Asterisk: `hotdesk agi`'s own AMI watcher against the wire-level
FakeAMI (ContactStatus, PJSIPShowContacts and security events as Asterisk 22 sends them)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

import pytest

from hotdesk.store.models import Device, Registration
from hotdesk.switch import registrations as regs
from hotdesk_agi.registrations import contact_from_list, security_address, translate
from tests.drivers.asterisk import make_driver
from tests.fakes.asterisk import Contact

PHONE = "127.0.0.1:5071"


def wait(cond: Callable[[], bool], timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def contact(account: str, where: str = PHONE) -> Contact:
    return Contact(account, f"sip:{account}@{where};transport=UDP", call_id=f"1-{account}@x",
                   user_agent="SIPp-hotdesk-lab", expiration=int(time.time()) + 3600)


def view(device: Device) -> regs.RegistrationView:
    return regs.view(Device.get_by_id(device.id))


@pytest.fixture
def drv(runtime, tmp_path):
    with make_driver(runtime, tmp_path) as d:
        wait(lambda: regs.watching())  # the first listing (empty) is stored
        yield d


def test_watcher_has_its_own_connection_and_the_notify_one_stays_events_off(drv):
    logins = [dict(a) for a in drv.ami.actions if dict(a).get("Action") == "Login"]
    assert sorted(login["Events"] for login in logins) == ["off", "system,security"]
    assert any(dict(a).get("Action") == "PJSIPShowContacts" for a in drv.ami.actions)


def test_phone_registers_and_unregisters(drv, desk):
    drv.ami.register(contact("8001"))
    wait(lambda: view(desk).state == "registered")
    v = view(desk)
    assert (v.account, v.address, v.expected) == ("8001", PHONE, "8001")
    drv.ami.register(contact("8001"), registered=False)
    wait(lambda: view(desk).state == "unregistered")
    assert Registration.select().count() == 0


def test_contacts_registered_while_disconnected_are_listed_at_reconnect(drv, desk):
    drv.stop_switch_control()
    wait(lambda: not drv.app.registrations.client.connected.is_set())
    # Asterisk restarts with the phone registered (no event reaches hotdesk).
    drv.ami.contacts.append(contact("8001"))
    drv.start_switch_control()
    wait(lambda: view(desk).state == "registered")
    row = Registration.get()
    assert row.user_agent == "SIPp-hotdesk-lab" and row.expires_at is not None


def test_login_then_registration_as_the_user_confirms(drv, alice, desk):
    drv.ami.register(contact("8001"))
    wait(lambda: view(desk).state == "registered")
    assert drv.call("login", "8001", "101", ["1234"], source=PHONE).result == "ok"
    drv.notifies(1)
    # Fetched and re-registered as the user: the old contact goes, the new one comes.
    assert view(desk).state == "mismatch"
    drv.ami.register(contact("8001"), registered=False)
    drv.ami.register(contact("101"))
    wait(lambda: view(desk).state == "registered")
    assert (view(desk).account, view(desk).expected) == ("101", "101")


def test_wrong_password_shows_credentials_rejected(drv, alice, desk):
    drv.ami.register(contact("8001"))
    assert drv.call("login", "8001", "101", ["1234"], source=PHONE).result == "ok"
    drv.ami.register(contact("8001"), registered=False)
    drv.ami.refuse(contact("101"))
    wait(lambda: view(desk).state == "rejected")
    v = view(desk)
    assert (v.label, v.failure_reason) == ("credentials rejected", "wrong password")


def test_translate_ignores_other_events_and_other_services():
    now = datetime(2030, 1, 1)
    assert translate({"Event": "PeerStatus", "Peer": "PJSIP/8001"}, now) is None
    assert translate({"Event": "ChallengeResponseFailed", "Service": "AMI",
                      "RemoteAddress": "IPV4/TCP/127.0.0.1/5038"}, now) is None
    assert translate({"Event": "ContactStatus", "ContactStatus": "Removed"}, now) is None
    seen = translate({"Event": "ContactStatus", "URI": "sip:8001@10.0.0.7:5060",
                      "ContactStatus": "Reachable", "AOR": "8001"}, now)
    assert isinstance(seen, regs.ContactSeen) and seen.address == "10.0.0.7:5060"
    assert security_address("IPV6/UDP/2001:db8::7/5060") == "[2001:db8::7]:5060"
    assert contact_from_list({"Event": "ContactListComplete"}, now) is None
