"""Registrations observed on FreeSWITCH: `hotdesk esl`'s own Event Socket watcher against the
wire-level fake (sofia::register / sofia::unregister bodies and the `sofia status profile
internal reg` listing are the captured ones, values substituted)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from esl_handlers.registrations import SUBSCRIBE, parse_reg_listing, translate
from esl_handlers.wire import parse_headers
from hotdesk.store.models import Device, Registration
from hotdesk.switch import registrations as regs
from tests.drivers.freeswitch import make_driver
from tests.fakes.freeswitch import (
    INBOUND_REGISTER,
    INBOUND_SOFIA_REG,
    REG_EXPIRE,
    REG_FAILURE,
    REGISTRATIONS,
    SofiaRegistration,
    reg_listing,
    substitute,
)
from tests.test_registrations_asterisk import view, wait

PHONE = "127.0.0.1:5072"


@pytest.fixture
def drv(runtime, tmp_path):
    with make_driver(runtime, tmp_path) as d:
        wait(lambda: regs.watching())
        yield d


def test_the_captured_event_and_listing_translate():
    now = datetime(2030, 1, 1)
    change = translate(parse_headers(INBOUND_REGISTER), now)
    assert change == regs.ContactSeen("8001", "sip:8001@127.0.0.1:5072;transport=UDP", PHONE,
                                      now, expires_at=now + timedelta(seconds=3600),
                                      user_agent="HotdeskLab-SIPp", domain="127.0.0.1")
    listed = parse_reg_listing(INBOUND_SOFIA_REG.decode(), now)
    assert [(c.account, c.contact_uri, c.address, c.expires_at) for c in listed] == [
        ("8001", "sip:8001@127.0.0.1:5072;transport=UDP", PHONE, now + timedelta(seconds=3660))]
    # Another profile's events are not this watcher's.
    assert translate(parse_headers(INBOUND_REGISTER), now, profile="external") is None


def test_the_fake_replays_the_captures_byte_for_byte():
    cap = SofiaRegistration()
    assert reg_listing([cap]) == INBOUND_SOFIA_REG
    assert substitute(INBOUND_REGISTER, cap.event_values(3600)) == INBOUND_REGISTER
    assert substitute(REG_FAILURE, {"to-user": "102", "network-ip": "127.0.0.1",
                                    "network-port": "5076"}) == REG_FAILURE
    expired = SofiaRegistration(port="5077", call_id="1-7362@127.0.0.1")
    assert substitute(REG_EXPIRE, {"call-id": expired.call_id, "user": "8001",
                                   "username": "8001", "contact": expired.contact,
                                   "network-ip": "127.0.0.1", "network-port": "5077",
                                   "user-agent": expired.agent}) == REG_EXPIRE


def test_the_captured_registration_session_translates_event_by_event():
    """The lab capture: 101 registers, 102 wrong password, 999 unknown user, 101
    unregisters, 8001 registers for 10 s and expires. register_attempt is not ours."""
    now = datetime(2030, 1, 1)
    changes = [translate(parse_headers(body), now) for head, body in REGISTRATIONS
               if b"Content-Type: text/event-plain" in head]
    summary = [(type(c).__name__, c.account, getattr(c, "address", "")) if c else None
               for c in changes]
    refused = "wrong password or no such user (403 Forbidden)"
    assert summary == [
        None, ("ContactSeen", "101", "127.0.0.1:5075"),
        None, ("AuthRefused", "102", "127.0.0.1:5076"),
        None, ("AuthRefused", "999", "127.0.0.1:5078"),
        None, ("ContactGone", "101", ""),
        None, ("ContactSeen", "8001", "127.0.0.1:5077"),
        ("ContactGone", "8001", "")]
    assert all(c.reason == refused for c in changes if isinstance(c, regs.AuthRefused))
    # The contact of an unregister/expire is the one its register stored.
    assert changes[1].contact_uri == changes[7].contact_uri
    assert changes[9].contact_uri == changes[10].contact_uri


def test_watcher_subscribes_on_its_own_connection_and_lists(drv, desk):
    assert f"event plain {SUBSCRIBE}" in drv.fake.commands
    assert "api sofia status profile internal reg" in drv.fake.commands
    # The fake's default listing is the captured one: 8001 registered from 127.0.0.1:5072.
    wait(lambda: view(desk).state == "registered")
    assert (view(desk).account, view(desk).address) == ("8001", PHONE)


def test_register_login_reregister_as_user_and_unregister(drv, alice, desk):
    drv.fake.registrations = []
    idle = SofiaRegistration()
    drv.fake.register(idle)
    wait(lambda: view(desk).state == "registered")
    assert drv.call("login", "8001", "101", ["1234"], source=PHONE).result == "ok"
    assert view(desk).state == "mismatch"
    drv.fake.unregister(idle)
    drv.fake.register(SofiaRegistration(user="101", call_id="2-7543@127.0.0.1"))
    wait(lambda: view(desk).state == "registered")
    assert (view(desk).account, view(desk).expected) == ("101", "101")
    drv.fake.unregister(SofiaRegistration(user="101", call_id="2-7543@127.0.0.1"))
    wait(lambda: view(desk).state == "unregistered")


def test_reconnect_lists_again_and_forgets_what_went_away(drv, desk, desk2):
    wait(lambda: view(desk).state == "registered")
    drv.fake.registrations = [SofiaRegistration(user="8002", port="5074")]
    drv.service.registrations.conn._drop()  # the connection breaks; it comes back
    wait(lambda: view(desk2).state == "registered")
    wait(lambda: view(desk).state == "unregistered")
    assert [r.account for r in Registration.select()] == ["8002"]
    assert Device.get_by_id(desk2.id).id == Registration.get().device_id


def test_wrong_password_then_expiry(drv, desk):
    phone = SofiaRegistration()  # the one the listing at connect showed
    wait(lambda: view(desk).state == "registered")
    drv.fake.refuse(phone)
    wait(lambda: view(desk).state == "rejected")
    assert view(desk).label == "credentials rejected"
    drv.fake.register(phone)
    wait(lambda: view(desk).state == "registered")
    drv.fake.expire(phone)
    wait(lambda: view(desk).state == "unregistered")
