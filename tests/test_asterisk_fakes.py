"""The fakes reproduce the captured Asterisk bytes exactly (tests/fakes/asterisk_captures)."""

from __future__ import annotations

import asyncio

import pytest

from hotdesk_agi.protocol import LineReader
from hotdesk_agi.simulate import AsteriskChannel, CallSetup, place_call
from tests.conftest import CAPTURES, reference_bytes
from tests.fakes.asterisk import Contact, FakeAMI

CAPTURED_UNIQUEID = {
    "asterisk-fastagi-login-ok": ("PJSIP/8001-00000000", "hotdesk-lab-1795731684.0",
                                  "140677827548864"),
    "asterisk-fastagi-pin-timeout": None,
    "asterisk-fastagi-hangup-mid-pin": ("PJSIP/8001-00000002", "hotdesk-lab-1795731714.2",
                                        "140677827036864"),
    "asterisk-fastagi-bad-command": ("PJSIP/8001-00000003", "hotdesk-lab-1795731724.3",
                                     "140677827036864"),
}


def captured_setup(name: str) -> CallSetup:
    channel, uniqueid, threadid = CAPTURED_UNIQUEID[name]
    return CallSetup(script="login", args=["101", "127.0.0.1:5071"], endpoint="8001",
                     callerid_name="Hotdesk Phone 8001", dialed="*70101", channel=channel,
                     uniqueid=uniqueid, threadid=threadid,
                     variables={"${CHANNEL(pjsip,remote_addr)}": "127.0.0.1:5071",
                                "CALLERID(num)": "8001"})


async def replay_fastagi(commands: list[bytes], channel: AsteriskChannel) -> bytes:
    """A FastAGI server on 4573's stand-in that sends the captured commands, each after
    the previous reply, then closes; returns what the fake Asterisk wrote."""
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lines = LineReader(reader)
        while await lines.line(5) != "":
            pass
        for cmd in commands:
            writer.write(cmd)
            await lines.reply(5)
        writer.close()
        done.set_result(None)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    # The captures used agi://127.0.0.1:4573; the fake's agi_request names the real port.
    transcript = await asyncio.wait_for(place_call("127.0.0.1", port, channel), 10)
    await done
    server.close()
    return transcript.sent.replace(f"127.0.0.1:{port}/".encode(), b"127.0.0.1:4573/")


@pytest.mark.parametrize("name,hangup_at", [
    ("asterisk-fastagi-login-ok", None),
    ("asterisk-fastagi-hangup-mid-pin", "collect"),
    ("asterisk-fastagi-bad-command", None),
])
def test_fake_fastagi_matches_capture_byte_for_byte(name, hangup_at):
    c2s = reference_bytes(f"{name}.c2s.bin")
    s2c = reference_bytes(f"{name}.s2c.bin")
    commands = [line + b"\n" for line in c2s.split(b"\n")[:-1]]
    channel = AsteriskChannel(captured_setup(name), digits=["1234"], hangup_at=hangup_at)
    sent = asyncio.run(replay_fastagi(commands, channel))
    assert sent == s2c
    assert [c.encode() + b"\n" for c in channel.commands] == commands


def test_fake_fastagi_pin_timeout_reply():
    s2c = reference_bytes("asterisk-fastagi-pin-timeout.s2c.bin")
    channel = AsteriskChannel(CallSetup(), digits=[""])
    assert channel.handle("GET DATA beep 5000 4") in s2c
    assert channel.handle("GET DATA beep 5000 4") == b"200 result= (timeout)\n"


def split_actions(c2s: bytes) -> list[bytes]:
    return [block + b"\r\n\r\n" for block in c2s.split(b"\r\n\r\n")[:-1]]


class Clock:
    def __init__(self, values: list[float]) -> None:
        self.values = list(values)

    def __call__(self) -> float:
        return self.values.pop(0)


async def replay_ami(fake: FakeAMI, actions: list[bytes], between=None) -> bytes:
    """Send captured actions one by one (waiting for each response) and return the raw
    bytes the fake sent; ``between[i]`` runs before action i."""
    port = await fake.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = bytearray(await reader.readuntil(b"\r\n"))
    client_port = writer.get_extra_info("sockname")[1]
    for i, action in enumerate(actions):
        if between and i in between:
            between[i]()
            await asyncio.sleep(0.05)
        writer.write(action)
        action_id = [ln for ln in action.split(b"\r\n") if ln.startswith(b"ActionID")][0]
        while True:
            try:
                block = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            except asyncio.IncompleteReadError as exc:
                received += exc.partial
                break
            received += block
            final = b"Response:" in block and b"EventList: start" not in block
            if action_id in block and (final or b"EventList: Complete" in block):
                break
    received += await asyncio.wait_for(reader.read(), 5)  # the switch closes after Logoff
    writer.close()
    await fake.stop()
    return bytes(received).replace(b"/%d\r\n" % client_port, b"/CLIENTPORT\r\n").replace(
        b"/%d\r\n" % port, b"/AMIPORT\r\n")


def test_fake_ami_session_matches_capture_byte_for_byte():
    c2s = reference_bytes("asterisk-ami-session.c2s.bin")
    s2c = reference_bytes("asterisk-ami-session.s2c.bin")
    clock = Clock([1795732168.8935, 1795732168.893238, 1795732169.895019,
                   1795732170.5115, 1795732170.511307, 1795732170.5145, 1795732170.514584,
                   1795732170.515365, 1795732170.515396, 1795732170.515421,
                   1795732190.5185, 1795732190.519281, 1795732190.5195, 1795732190.520024,
                   1795732190.520969, 1795732190.520985, 1795732190.520993])
    fake = FakeAMI(endpoints={"8001"}, clock=clock)
    phone = Contact("8001", "sip:8001@127.0.0.1:5071;transport=UDP",
                    object_hash="bc07864fe422b4cb11bbcdcb7cef26e7", call_id="1-8893@127.0.0.1",
                    user_agent="SIPp-hotdesk-lab", expiration=1795735770)
    actions = split_actions(c2s)
    got = asyncio.run(replay_ami(fake, actions, {2: lambda: fake.register(phone),
                                                 6: lambda: fake.register(phone, False)}))
    expected = s2c.replace(b"/48962\r\n", b"/CLIENTPORT\r\n").replace(b"/5038\r\n",
                                                                     b"/AMIPORT\r\n")
    assert got == expected
    assert [n.endpoint or n.uri for n in fake.notifies] == [
        "8001", "sip:8001@127.0.0.1:5071", "8001"]


def test_fake_ami_bad_login_matches_capture():
    c2s = reference_bytes("asterisk-ami-session.badlogin.c2s.bin")
    s2c = reference_bytes("asterisk-ami-session.badlogin.s2c.bin")
    got = asyncio.run(replay_ami(FakeAMI(), split_actions(c2s)))
    assert got == s2c


def test_fake_ami_shutdown_matches_capture():
    c2s = reference_bytes("asterisk-ami-restart.c2s.bin")
    s2c = reference_bytes("asterisk-ami-restart.s2c.bin")
    fake = FakeAMI(clock=Clock([1795731802.8315, 1795731802.831911, 1795731803.855791]),
                   session_id="0x55b3d8e18510", uptime=124)

    async def run() -> bytes:
        port = await fake.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client_port = writer.get_extra_info("sockname")[1]
        writer.write(c2s)
        data = bytearray()
        while b"SessionTV" not in data:
            data += await asyncio.wait_for(reader.read(4096), 5)
        await fake.shutdown()
        data += await asyncio.wait_for(reader.read(), 5)
        writer.close()
        return bytes(data).replace(b"/%d\r\n" % client_port, b"/46372\r\n").replace(
            b"/%d\r\n" % port, b"/5038\r\n")

    assert asyncio.run(run()) == s2c


def lab_bytes(name: str) -> bytes:
    return (CAPTURES["asterisk"] / name).read_bytes()


async def _exchange(fake: FakeAMI, steps: list[tuple[bytes, int]]) -> bytes:
    """Write each chunk at once, then read that many replies; the banner first and
    whatever the switch sends before closing last."""
    port = await fake.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = bytearray(await reader.readuntil(b"\r\n"))
    for chunk, replies in steps:
        writer.write(chunk)
        for _ in range(replies):
            received += await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    received += await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await fake.stop()
    return bytes(received)


def test_fake_ami_answers_pipelined_notifies_like_asterisk():
    """Five PJSIPNotify in one write: every reply in order with its ActionID, the failing
    one in its place (the NOTIFY drain pipelines a batch on one connection)."""
    c2s = lab_bytes("ami-notify-pipelined.c2s.bin")
    s2c = lab_bytes("ami-notify-pipelined.s2c.bin")
    actions = split_actions(c2s)
    assert len(actions) == 7
    fake = FakeAMI(secret="labsecret", endpoints={"8001", "101"})
    got = asyncio.run(_exchange(fake, [(actions[0], 1), (b"".join(actions[1:6]), 5),
                                       (actions[6], 1)]))
    assert got == s2c
    assert [n.endpoint or n.uri for n in fake.notifies] == [
        "sip:8001@127.0.0.1:5999", "8001", "sip:101@127.0.0.1:5998", "101"]


def test_fake_ami_astdb_writes_match_capture():
    """DBPut and DBDelTree (the emergency entries a login writes) answer as captured."""
    c2s = lab_bytes("ami-astdb.c2s.bin")
    s2c = lab_bytes("ami-astdb.s2c.bin")
    kept = [a for a in split_actions(c2s)
            if a.split(b"\r\n", 1)[0] in (b"Action: Login", b"Action: DBPut",
                                          b"Action: DBDelTree", b"Action: Logoff")]
    ids = [a.split(b"\r\n")[1] for a in kept]  # the ActionID line of each
    banner, _, rest = s2c.partition(b"\r\n")
    expected = banner + b"\r\n" + b"".join(
        m + b"\r\n\r\n" for m in rest.split(b"\r\n\r\n")
        if m.startswith(b"Response: ") and m.split(b"\r\n")[1] in ids)
    fake = FakeAMI(secret="labsecret")
    got = asyncio.run(_exchange(fake, [(a, 1) for a in kept]))
    assert got == expected
    assert fake.astdb == {}  # both entries written, then the tree deleted
    assert len(kept) == 6


def test_notify_batch_goes_out_as_captured_and_each_reply_reaches_its_target():
    """AmiNotifySender's batch: the five PJSIPNotify written exactly as in capture
    ami-notify-pipelined (ActionIDs hotdesk-1..5, all before any reply), and the
    captured replies matched back by ActionID, the refused one (``nosuch``) alone."""
    from hotdesk.notify.outbox import NotifyError, NotifyTarget
    from hotdesk.settings import load_config
    from hotdesk_agi.ami import AmiClient, AmiNotifySender

    c2s = split_actions(lab_bytes("ami-notify-pipelined.c2s.bin"))
    banner, _, rest = lab_bytes("ami-notify-pipelined.s2c.bin").partition(b"\r\n")
    replies = [block + b"\r\n\r\n" for block in rest.split(b"\r\n\r\n")[:-1]]
    received = bytearray()

    async def switch(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(banner + b"\r\n")
        await reader.readuntil(b"\r\n\r\n")  # the Login
        writer.write(replies[0])
        for _ in range(5):
            received.extend(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"".join(replies[1:6]))
        await reader.read()

    async def run() -> list[BaseException | None]:
        server = await asyncio.start_server(switch, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        cfg = load_config(environ={"HOTDESK_AMI_PORT": str(port),
                                   "HOTDESK_AMI_SECRET": "labsecret"})
        client = AmiClient(cfg.ami)
        client.start()
        await asyncio.wait_for(client.connected.wait(), 5)
        event = "check-sync;reboot=false"
        targets = [NotifyTarget(1, "8001", "", "sip:8001@127.0.0.1:5999", event),
                   NotifyTarget(2, "8001", "", "", event),
                   NotifyTarget(3, "101", "", "sip:101@127.0.0.1:5998", event),
                   NotifyTarget(4, "nosuch", "", "", event),
                   NotifyTarget(5, "101", "", "", event)]
        sender = AmiNotifySender(client, asyncio.get_running_loop())
        results = await sender.send_many_async(targets)
        await client.close()
        server.close()
        return results

    results = asyncio.run(run())
    assert bytes(received) == b"".join(c2s[1:6])
    assert [r is None for r in results] == [True, True, True, False, True]
    assert isinstance(results[3], NotifyError)
    assert str(results[3]) == "Unable to retrieve endpoint nosuch"  # Asterisk's Message
