"""FastAGI parsing and the dialplan file, without sockets."""

from __future__ import annotations

import asyncio
import re

import pytest

from hotdesk.notify.outbox import NotifyTarget, SwitchDown
from hotdesk.settings import ASTERISK_PROMPTS, AmiConfig
from hotdesk_agi.ami import AmiClient, AmiNotifySender, notify_action
from hotdesk_agi.handlers import AgiRequest
from hotdesk_agi.protocol import AgiProtocolError, LineReader, parse_reply_line, quote, read_env
from hotdesk_agi.server import HANDLERS
from tests.conftest import REPO, reference_bytes
from tests.fakes.asterisk import FakeAMI


@pytest.mark.parametrize("line,code,result,data,extra", [
    ("200 result=0", 200, "0", None, ""),
    ("200 result=0 endpos=26400", 200, "0", None, "endpos=26400"),
    ("200 result=1234", 200, "1234", None, ""),
    ("200 result= (timeout)", 200, "", "timeout", ""),
    ("200 result=12 (timeout)", 200, "12", "timeout", ""),
    ("200 result=1 (127.0.0.1:5071)", 200, "1", "127.0.0.1:5071", ""),
    ("200 result=-1", 200, "-1", None, ""),
    ("510 Invalid or unknown command", 510, "", None, "Invalid or unknown command"),
])
def test_parse_reply_line(line, code, result, data, extra):
    reply = parse_reply_line(line)
    assert (reply.code, reply.result, reply.data, reply.extra) == (code, result, data, extra)


def test_garbage_reply_is_a_protocol_error():
    with pytest.raises(AgiProtocolError):
        parse_reply_line("HTTP/1.1 200 OK")


def feed(data: bytes) -> LineReader:
    reader = asyncio.StreamReader(limit=8192)
    reader.feed_data(data)
    reader.feed_eof()
    return LineReader(reader)


def test_captured_replies_parse_with_hangups_skipped_and_520_blocks_whole():
    async def run() -> list:
        s2c = reference_bytes("asterisk-fastagi-bad-command.s2c.bin")
        lines = feed(s2c)
        env = await read_env(lines, 1)
        return [env, *[await lines.reply(1) for _ in range(4)], lines]
    env, answer, unknown, usage1, usage2, lines = asyncio.run(run())
    assert env["agi_accountcode"] == "" and env["agi_arg_2"] == "127.0.0.1:5071"
    assert (answer.code, unknown.code, usage1.code, usage2.code) == (200, 510, 520, 520)
    assert "PLAYBACKSTATUS" in usage2.extra
    assert not lines.hangup_seen

    async def hangup() -> tuple:
        lines = feed(reference_bytes("asterisk-fastagi-hangup-mid-pin.s2c.bin"))
        await read_env(lines, 1)
        replies = [await lines.reply(1) for _ in range(5)]
        return replies, lines.hangup_seen
    replies, seen = asyncio.run(hangup())
    assert [r.code for r in replies] == [200, 200, 200, 200, 511]
    assert replies[2].result == "-1" and seen


def test_request_routes_on_script_name_and_reads_args():
    req = AgiRequest({"agi_network_script": "login?ext=101", "agi_arg_1": "101",
                      "agi_arg_2": "127.0.0.1:5071", "agi_callerid": "8001",
                      "agi_uniqueid": "u1"})
    assert req.script == "login"
    ctx = req.call_context()
    assert (ctx.endpoint, ctx.source, ctx.call_id, ctx.switch) == (
        "8001", "127.0.0.1:5071", "u1", "asterisk")


def test_quote():
    assert quote("agent-pass") == "agent-pass"
    assert quote("") == '""'
    assert quote('a "b"') == '"a \\"b\\""'


def test_notify_action_targets_exactly_one_phone():
    uri = NotifyTarget(1, "101", "", "sip:101@192.0.2.1:5060", "check-sync;reboot=false")
    assert notify_action(uri, "pjsip") == [("Action", "PJSIPNotify"),
                                           ("URI", "sip:101@192.0.2.1:5060"),
                                           ("Variable", "Event=check-sync;reboot=false")]
    ep = NotifyTarget(1, "8001", "", "", "check-sync")
    assert notify_action(ep, "pjsip")[1] == ("Endpoint", "8001")
    assert notify_action(ep, "sip") == [("Action", "SIPnotify"), ("Channel", "8001"),
                                        ("Variable", "Event=check-sync")]


def test_dialplan_calls_the_routes_with_the_documented_arguments():
    text = (REPO / "dialplan" / "asterisk" / "extensions_hotdesk.conf").read_text()
    calls = [ln.split("AGI(", 1)[1] for ln in text.splitlines()
             if "AGI(" in ln and not ln.lstrip().startswith(";")]
    tail = ",${CHANNEL(pjsip,remote_addr)},${CHANNEL(endpoint)},${HOTDESK_TENANT})"
    assert calls == ["agi://${HOTDESK_AGI}/login,${EXTEN:3}" + tail,
                     "agi://${HOTDESK_AGI}/logout," + tail]
    assert {c.split("/")[3].split(",")[0] for c in calls} == set(HANDLERS)
    assert "HOTDESK_AGI=127.0.0.1:4573" in text
    # Every sound the dialplan plays is a real core sound used by the defaults too.
    for sound in re.findall(r"Playback\(([\w-]+)\)", text):
        assert sound in ASTERISK_PROMPTS.values()


def test_prompts_are_real_core_sounds():
    # From asterisk-core-sounds-en 1.6.1 (core-sounds-en.txt).
    core = {"agent-pass", "agent-loginok", "agent-loggedoff", "vm-incorrect",
            "confbridge-pin-bad", "pbx-invalid", "ss-noservice", "feature-not-avail-line",
            "cannot-complete-as-dialed", "agent-alreadyon", "vm-goodbye",
            "please-try-call-later"}
    assert set(ASTERISK_PROMPTS.values()) <= core


def test_notify_batch_is_pipelined_and_each_reply_goes_to_its_target():
    """The drain's batch: all PJSIPNotify in flight together on one connection, replies
    matched by ActionID; a refused one fails alone, in its place."""

    async def run() -> tuple[list, FakeAMI, list[bytes]]:
        fake = FakeAMI(endpoints={"8001", "8002"})
        port = await fake.start()
        client = AmiClient(AmiConfig(port=port, secret="hotdesk-secret"), min_backoff=0.05)
        client.start()
        await asyncio.wait_for(client.connected.wait(), 5)
        sender = AmiNotifySender(client, asyncio.get_running_loop())
        targets = [NotifyTarget(1, "8001", "", "sip:8001@192.0.2.1:5060", "check-sync"),
                   NotifyTarget(2, "nosuch", "", "", "check-sync"),
                   NotifyTarget(3, "8002", "", "", "check-sync;reboot=false")]
        results = await sender.send_many_async(targets)
        await client.close()
        await fake.stop()
        return results, fake, [a for a in fake.actions if a[0][1] == "PJSIPNotify"]

    results, fake, actions = asyncio.run(run())
    assert results[0] is None and results[2] is None
    assert str(results[1]) == "Unable to retrieve endpoint nosuch"
    assert [n.endpoint or n.uri for n in fake.notifies] == ["sip:8001@192.0.2.1:5060", "8002"]
    ids = [dict(a)["ActionID"] for a in actions]
    assert len(set(ids)) == 3  # distinct ActionIDs, so replies cannot be mixed up


def test_notify_batch_without_ami_is_switch_down_for_every_target():

    async def run() -> list:
        client = AmiClient(AmiConfig(port=1))  # never started: not connected
        sender = AmiNotifySender(client, asyncio.get_running_loop())
        return await sender.send_many_async([NotifyTarget(1, "8001", "", "", "check-sync"),
                                             NotifyTarget(2, "8002", "", "", "check-sync")])

    assert [type(r) for r in asyncio.run(run())] == [SwitchDown, SwitchDown]
