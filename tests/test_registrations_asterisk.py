"""Registrations observed on Asterisk: `hotdesk agi`'s own AMI watcher against the wire-level
FakeAMI (ContactStatus, PJSIPShowContacts and security events as Asterisk 22 sends them)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from hotdesk.store.models import Device, Registration
from hotdesk.switch import registrations as regs
from hotdesk_agi.ami import parse_message
from hotdesk_agi.registrations import contact_from_list, security_address, translate
from tests.drivers.asterisk import make_driver
from tests.fakes.asterisk import Contact, FakeAMI

PHONE = "127.0.0.1:5071"
# Lab capture (Asterisk 22.10.1): 101 registers, a listing, 102 with a wrong password, 101
# unregisters, 8001 registers for 60 s and expires, listings, Logoff.
CAPTURE = Path(__file__).parent / "fakes" / "asterisk_captures" / "ami-registrations.s2c.bin"


def captured_messages() -> list[bytes]:
    data = CAPTURE.read_bytes()
    return [block for block in data.split(b"\r\n\r\n") if block.strip()][1:]  # no banner


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


def test_the_captured_session_translates_event_by_event():
    now = datetime(2030, 1, 1)
    changes = [c for c in (translate(parse_message(m), now) for m in captured_messages()) if c]
    # The AMI login's own SuccessfulAuth (Service AMI) is not a phone's.
    assert [(type(c).__name__, c.account, getattr(c, "address", "")) for c in changes] == [
        ("AuthAccepted", "101", "127.0.0.1:5071"),
        ("ContactSeen", "101", "127.0.0.1:5071"),
        ("AuthRefused", "102", "127.0.0.1:5072"),
        ("AuthAccepted", "101", "127.0.0.1:5071"),  # the unREGISTER is authenticated too
        ("ContactGone", "101", ""),
        ("AuthAccepted", "8001", "127.0.0.1:5073"),
        ("ContactSeen", "8001", "127.0.0.1:5073"),
        ("ContactGone", "8001", ""),  # expired: the same Removed as an unregister
    ]
    assert changes[2].reason == "wrong password"
    listed = [contact_from_list(parse_message(m), now) for m in captured_messages()]
    listed = [c for c in listed if c]
    assert listed[0].account == "101" and listed[0].contact_uri == "sip:101@127.0.0.1:5071"
    assert listed[0].user_agent == "SIPp-hotdesk-lab" and listed[0].expires_at is not None


def test_fake_ami_sends_the_captured_bytes():
    """ChallengeResponseFailed (with its 'Response' header) and the empty listing's Error
    (with its bare LF) come out of FakeAMI exactly as Asterisk sent them."""
    captured = b"\r\n\r\n".join(captured_messages()) + b"\r\n\r\n"
    refused = next(m for m in captured_messages() if m.startswith(b"Event: ChallengeResponseF"))
    empty = next(m for m in captured_messages() if b"No Contacts found" in m)
    stamp = float(parse_message(refused)["Timestamp"])
    challenge, response = (parse_message(refused)[k] for k in ("Challenge", "Response"))

    async def run() -> bytes:
        ami = FakeAMI(username="hotdesk", secret="labsecret", clock=lambda: stamp)
        port = await ami.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readuntil(b"\r\n")
        writer.write(b"Action: Login\r\nActionID: l\r\nUsername: hotdesk\r\n"
                     b"Secret: labsecret\r\nEvents: security\r\n\r\n")
        await writer.drain()
        while not ami.logins_ok:
            await asyncio.sleep(0.01)
        ami.refuse(Contact("102", "sip:102@127.0.0.1:5072", call_id="1-16858@127.0.0.1"),
                   nonce=challenge, response=response)
        writer.write(b"Action: PJSIPShowContacts\r\nActionID: contacts-3\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()
        await ami.stop()
        return bytes(ami.sent[1])

    sent = asyncio.run(run())
    assert refused + b"\r\n\r\n" in sent and refused + b"\r\n\r\n" in captured
    assert empty + b"\r\n\r\n" in sent
    assert b"Message: No Contacts found\n\r\n\r\n" in sent


def test_an_empty_switch_is_an_empty_listing_not_a_refusal(drv):
    """With no contact Asterisk answers PJSIPShowContacts with an Error: still watched."""
    assert drv.ami.contacts == []
    assert regs.watching()
