"""FreeSWITCH: the emergency entries reach mod_db over the Event Socket and calls are
noticed, against a fake answering with the real FreeSWITCH bytes
(tests/fakes/freeswitch_captures)."""

from __future__ import annotations

import dataclasses
import time

import pytest

from esl_handlers import emergency as esl_emergency
from esl_handlers.inbound import InboundConnection
from esl_handlers.wire import parse_headers
from hotdesk.calls.service import CallContext
from hotdesk.emergency.models import EmergencySync
from hotdesk.store.models import AuditEvent
from hotdesk.switch import emergency
from tests.emergency_helpers import DESK_3, Webhook, set_location
from tests.fakes.freeswitch_emergency import CALL_EVENTS, DB_NO_VALUE, FakeEmergencyFreeSWITCH

CALL = CallContext(switch="freeswitch", call_id="c1", endpoint="8001", source="192.0.2.10:5060")


@pytest.fixture
def fake():
    server = FakeEmergencyFreeSWITCH()
    server.start()
    yield server
    server.stop()


def connect(fake, **kw) -> InboundConnection:
    inbound = InboundConnection(*fake.address, "ClueCon", backoff_start=0.05, **kw)
    inbound.start()
    assert inbound.wait_connected(5)
    return inbound


def test_login_and_logout_write_and_delete_the_mod_db_rows(runtime, alice, desk, fake):
    set_location(runtime.db, desk, DESK_3)
    inbound = connect(fake)
    writer = esl_emergency.EslStoreWriter(inbound)
    try:
        runtime.service.login(desk.id, "101", "1234", CALL)
        emergency.drain_once(writer)
        assert fake.db["hotdesk_emergency_callback/101@default"] == "+15550100"
        assert fake.db["hotdesk_emergency_location/101@default"] == (
            "1 Main St, Springfield, CA, US; building A, floor 3, room 3.01")
        assert fake.db["hotdesk_emergency_callback/8001@default"] == "+15550100"
        assert ("db insert/hotdesk_emergency_location/101@default/1 Main St, Springfield, CA, "
                "US; building A, floor 3, room 3.01") in fake.db_commands
        runtime.service.logout(desk.id)
        emergency.drain_once(writer)
        assert "hotdesk_emergency_callback/101@default" not in fake.db
        assert emergency.pending_count() == 0
    finally:
        inbound.stop()


def test_entries_wait_while_freeswitch_is_away(runtime, alice, desk, fake):
    set_location(runtime.db, desk, DESK_3)
    inbound = InboundConnection("127.0.0.1", 1, "ClueCon")  # never connected
    runtime.service.login(desk.id, "101", "1234", CALL)
    assert emergency.drain_once(esl_emergency.EslStoreWriter(inbound))["switch_down"] == 1
    live = connect(fake)
    try:
        emergency.drain_once(esl_emergency.EslStoreWriter(live))
        assert fake.db["hotdesk_emergency_callback/101@default"] == "+15550100"
    finally:
        live.stop()


def test_a_db_error_is_retried(runtime, desk, fake):
    set_location(runtime.db, desk, DESK_3)
    inbound = connect(fake)
    fake.db_commands.clear()
    original = fake._api
    fake._api = lambda cmd: b"-ERR db Command not found!\n" if cmd.startswith("db ") \
        else original(cmd)
    try:
        counts = emergency.drain_once(esl_emergency.EslStoreWriter(inbound))
        assert counts["retry"] == 1 and emergency.pending_count() == 1
    finally:
        inbound.stop()


def test_only_the_phones_channel_create_to_a_watched_number_counts():
    seen = [esl_emergency.seen_call(parse_headers(body.split(b"\n\n", 1)[0]), {"911"})
            for body in CALL_EVENTS]
    calls = [c for c in seen if c is not None]
    assert [(c.endpoint, c.domain, c.number) for c in calls] == [("101", "127.0.0.1", "911")]


def test_a_call_to_911_is_noticed_notified_and_audited_within_a_second(runtime, alice, desk,
                                                                        fake):
    set_location(runtime.db, desk, DESK_3)
    runtime.service.login(desk.id, "101", "1234", CALL)
    hook = Webhook()
    esl = dataclasses.replace(runtime.config.esl, host=fake.address[0], port=fake.address[1])
    config = dataclasses.replace(runtime.config, esl=esl, emergency=dataclasses.replace(
        runtime.config.emergency, webhook_url=hook.url))
    watch = esl_emergency.Watch(dataclasses.replace(runtime, config=config), backoff_start=0.05)
    watch.start()
    try:
        assert watch.inbound.wait_connected(5)
        deadline = time.monotonic() + 5
        while "event plain CHANNEL_CREATE" not in fake.commands and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        fake.emit_call("101")
        assert hook.received.wait(5)
        assert time.monotonic() - started < 1.0
    finally:
        watch.stop()
        hook.close()
    [post] = hook.posts
    assert (post["user"], post["extension"], post["callback"]) == ("Alice", "101", "+15550100")
    assert post["switch"] == "freeswitch" and post["desk"] == "Desk 8001"
    assert post["call_id"] == "de484d0f-54a2-4ccd-b8d5-2ac83e680b97"
    assert AuditEvent.get(AuditEvent.action == "emergency_call").device_id == desk.id


# -- a drain round's entries in one write (EslStoreWriter.write_many) ------------------

def _marks() -> dict[str, tuple[bool, int]]:
    return {r.endpoint: (r.pending, r.attempts) for r in EmergencySync.select()}


def test_a_rounds_entries_are_written_at_once(runtime, alice, desk, fake):
    """A switch that takes the commands but never answers: every ``db`` command of the
    round reached it before any reply, and without replies every mark stays, no
    attempt used (as when the link drops)."""
    set_location(runtime.db, desk, DESK_3)
    runtime.service.login(desk.id, "101", "1234", CALL)
    inbound = connect(fake, reply_timeout=0.3)
    fake.silent = True
    try:
        counts = emergency.drain_once(esl_emergency.EslStoreWriter(inbound))
    finally:
        inbound.stop()
    assert [c.split("/")[0] for c in fake.commands] == ["api db insert"] * 4
    assert counts["switch_down"] == 1 and counts["written"] == 0
    assert _marks() == {"8001": (True, 0), "101": (True, 0)}


def test_a_refused_entry_in_a_round_is_retried_and_the_others_written(runtime, alice, desk,
                                                                      fake):
    set_location(runtime.db, desk, DESK_3)
    runtime.service.login(desk.id, "101", "1234", CALL)
    inbound = connect(fake)
    original = fake._api
    fake._api = lambda cmd: DB_NO_VALUE if "/8001@" in cmd else original(cmd)  # mod_db's error
    try:
        counts = emergency.drain_once(esl_emergency.EslStoreWriter(inbound))
    finally:
        inbound.stop()
    assert counts == {"written": 1, "retry": 1, "switch_down": 0}
    assert _marks() == {"8001": (True, 1), "101": (False, 0)}
    assert EmergencySync.get(EmergencySync.endpoint == "8001").last_error == \
        "db insert: !err!"
    assert fake.db["hotdesk_emergency_callback/101@default"] == "+15550100"


def test_freeswitch_lost_mid_round_keeps_the_rest_marked(runtime, alice, desk, fake):
    set_location(runtime.db, desk, DESK_3)
    runtime.service.login(desk.id, "101", "1234", CALL)
    inbound = connect(fake)
    fake.drop_at = 3  # gone when 101's first command arrives: 8001's two were answered
    try:
        counts = emergency.drain_once(esl_emergency.EslStoreWriter(inbound))
    finally:
        inbound.stop()
    assert counts == {"written": 1, "retry": 0, "switch_down": 1}
    assert _marks() == {"8001": (False, 0), "101": (True, 0)}
    assert "hotdesk_emergency_callback/101@default" not in fake.db
