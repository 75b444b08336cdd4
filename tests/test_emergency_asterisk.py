"""Asterisk: the emergency entries reach AstDB over AMI and calls are noticed, against an
AMI fake that replays the real Asterisk 22 bytes (tests/fakes/asterisk_captures)."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from hotdesk.calls.service import CallContext
from hotdesk.store.models import AuditEvent
from hotdesk.switch import emergency
from hotdesk_agi import emergency as ami_emergency
from hotdesk_agi.ami import AmiClient, encode_action
from tests.emergency_helpers import DESK_3, Webhook, set_location
from tests.fakes.asterisk_emergency import CAPTURES, FakeEmergencyAMI

CALL = CallContext(switch="asterisk", call_id="c1", endpoint="8001", source="192.0.2.10:5060")


@pytest.fixture
def ami_config(runtime):
    def make(port: int):
        ami = dataclasses.replace(runtime.config.ami, host="127.0.0.1", port=port,
                                  username="hotdesk", secret="labsecret")
        return dataclasses.replace(runtime.config, ami=ami)
    return make


def test_dbput_is_sent_in_the_shape_asterisk_took_it():
    """Our DBPut has the header order of the captured one, which Asterisk accepted."""
    captured = (CAPTURES / "ami-astdb.c2s.bin").read_bytes().split(b"\r\n\r\n")[1] + b"\r\n\r\n"
    assert captured.startswith(b"Action: DBPut\r\n")
    ours = encode_action([("Action", "DBPut"), ("ActionID", "dbput-8001"),
                          ("Family", "hotdesk/emergency"), ("Key", "8001"),
                          ("Val", "Building A, 3rd floor, desk 12 (room 3.14) - "
                                  "call back 555 0100")])
    assert ours == captured


async def _drain_until(fake: FakeEmergencyAMI, runtime, client: AmiClient, check) -> None:
    writer = ami_emergency.AmiStoreWriter(client, asyncio.get_running_loop())
    for _ in range(50):
        await asyncio.get_running_loop().run_in_executor(None, emergency.drain_once, writer)
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"AstDB never got there: {fake.astdb}")


def test_login_and_logout_write_and_remove_the_accounts_astdb_entry(runtime, alice, desk,
                                                                    ami_config):
    set_location(runtime.db, desk, DESK_3)

    async def scenario() -> None:
        fake = FakeEmergencyAMI()
        port = await fake.start()
        client = AmiClient(ami_config(port).ami, min_backoff=0.05)
        client.start()
        await asyncio.wait_for(client.connected.wait(), 5)
        try:
            await _drain_until(fake, runtime, client,
                               lambda: "hotdesk/emergency/8001/civic" in fake.astdb)
            runtime.service.login(desk.id, "101", "1234", CALL)
            await _drain_until(fake, runtime, client,
                               lambda: "hotdesk/emergency/101/callback" in fake.astdb)
            assert fake.astdb["hotdesk/emergency/101/callback"] == "+15550100"
            assert fake.astdb["hotdesk/emergency/101/civic"] == (
                'country="US",A1="CA",A3="Springfield",RD="Main St",HNO="1",BLD="A",'
                'FLR="3",ROOM="3.01"')
            assert fake.astdb["hotdesk/emergency/101/text"].endswith("floor 3, room 3.01")
            runtime.service.logout(desk.id)
            await _drain_until(fake, runtime, client,
                               lambda: "hotdesk/emergency/101/civic" not in fake.astdb)
            assert b"Action: DBDelTree\r\n" in b"".join(fake.received)
            assert emergency.pending_count() == 0
            # Removing what is already gone ("Database entry not found") is success.
            emergency.mark(desk.tenant_id, "101")
            await _drain_until(fake, runtime, client, lambda: emergency.pending_count() == 0)
        finally:
            await client.close()
            await fake.stop()

    asyncio.run(scenario())


def test_entries_wait_for_asterisk_and_catch_up_after_it_returns(runtime, alice, desk,
                                                                 ami_config):
    set_location(runtime.db, desk, DESK_3)
    runtime.service.login(desk.id, "101", "1234", CALL)

    async def scenario() -> None:
        client = AmiClient(ami_config(1).ami, min_backoff=0.05)  # nothing listens there
        writer = ami_emergency.AmiStoreWriter(client, asyncio.get_running_loop())
        loop = asyncio.get_running_loop()
        counts = await loop.run_in_executor(None, emergency.drain_once, writer)
        assert counts["switch_down"] == 1 and emergency.pending_count() >= 2
        fake = FakeEmergencyAMI()
        client.config = ami_config(await fake.start()).ami
        client.start()
        await asyncio.wait_for(client.connected.wait(), 5)
        try:
            await _drain_until(fake, runtime, client, lambda: emergency.pending_count() == 0)
            assert fake.astdb["hotdesk/emergency/101/callback"] == "+15550100"
        finally:
            await client.close()
            await fake.stop()

    asyncio.run(scenario())


def test_a_call_to_911_is_noticed_notified_and_audited_within_a_second(runtime, alice, desk,
                                                                        ami_config):
    set_location(runtime.db, desk, DESK_3)
    runtime.service.login(desk.id, "101", "1234", CALL)
    hook = Webhook()

    async def scenario() -> None:
        fake = FakeEmergencyAMI()
        port = await fake.start()
        config = ami_config(port)
        config = dataclasses.replace(config, emergency=dataclasses.replace(
            config.emergency, webhook_url=hook.url))
        rt = dataclasses.replace(runtime, config=config)
        watch = ami_emergency.start_watch(rt, min_backoff=0.05)
        await asyncio.wait_for(watch.connected.wait(), 5)
        try:
            while not fake.listeners:
                await asyncio.sleep(0.01)
            started = time.monotonic()
            fake.emit_call("101")
            assert await asyncio.get_running_loop().run_in_executor(
                None, hook.received.wait, 5)
            assert time.monotonic() - started < 1.0
        finally:
            await watch.close()
            await fake.stop()

    try:
        asyncio.run(scenario())
    finally:
        hook.close()
    [post] = hook.posts
    assert post["event"] == "emergency_call" and post["number"] == "911"
    assert (post["user"], post["extension"], post["desk"]) == ("Alice", "101", "Desk 8001")
    assert post["callback"] == "+15550100"
    assert post["location"] == "1 Main St, Springfield, CA, US; building A, floor 3, room 3.01"
    assert post["call_id"] == "hotdesk-lab-1796134969.23"
    for _ in range(100):
        if AuditEvent.select().where(AuditEvent.action == "emergency_call").exists():
            break
        time.sleep(0.02)
    row = AuditEvent.get(AuditEvent.action == "emergency_call")
    assert row.device_id == desk.id and row.call_id == "hotdesk-lab-1796134969.23"


def test_only_the_phones_newchannel_to_a_watched_number_counts():
    from hotdesk_agi.ami import parse_message
    from tests.fakes.asterisk_emergency import CALL_EVENTS

    seen = [ami_emergency.seen_call(parse_message(e[:-4]), {"911"}) for e in CALL_EVENTS]
    calls = [c for c in seen if c is not None]
    assert [(c.endpoint, c.number, c.caller_id) for c in calls] == [("101", "911", "101")]
    assert all(ami_emergency.seen_call(parse_message(e[:-4]), {"112"}) is None
               for e in CALL_EVENTS)
