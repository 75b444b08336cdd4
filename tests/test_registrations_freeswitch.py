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
from tests.fakes.freeswitch import INBOUND_REGISTER, INBOUND_SOFIA_REG, SofiaRegistration
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
