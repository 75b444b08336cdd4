"""The fake Asterisk answers the voicemail PIN read exactly as Asterisk 22 did on the
wire (tests/fakes/asterisk_captures/fastagi-vminfo.*: a real call whose FastAGI server
read VM_INFO of an existing and a missing mailbox), and the adapter reads both right."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

from hotdesk.calls.callflow import ReadVoicemailPin
from hotdesk.calls.service import SwitchPin
from hotdesk_agi.protocol import LineReader
from hotdesk_agi.runner import AgiSession, _execute
from hotdesk_agi.simulate import AsteriskChannel, CallSetup

CAPTURES = Path(__file__).parent / "fakes" / "asterisk_captures"


def captured() -> list[tuple[str, bytes]]:
    """(command, the switch's reply bytes) of the VM_INFO reads in the capture."""
    commands = (CAPTURES / "fastagi-vminfo.c2s.bin").read_bytes().decode().splitlines()
    replies = (CAPTURES / "fastagi-vminfo.s2c.bin").read_bytes().split(b"\n\n", 1)[1]
    lines = replies.split(b"\n")
    return [(c, lines[i] + b"\n") for i, c in enumerate(commands) if "VM_INFO(" in c]


def test_fake_answers_the_read_byte_for_byte():
    reads = captured()
    assert [r for _, r in reads] == [b"200 result=1 (1234)\n", b"200 result=1 ()\n"]
    channel = AsteriskChannel(CallSetup(script="probe", args=[], endpoint="8001"),
                              voicemail={"101@default": "1234"})
    for command, reply in reads:
        assert channel.handle(command) == reply


def test_adapter_reads_an_existing_and_a_missing_mailbox():
    async def read(reply: bytes) -> object:
        reader = asyncio.StreamReader()
        reader.feed_data(reply)

        class Sink:
            transport = SimpleNamespace(get_write_buffer_size=lambda: 0)  # all sent

            def write(self, data: bytes) -> None:
                pass

            async def drain(self) -> None:
                pass

        session = AgiSession(LineReader(reader), Sink(), 5.0)  # type: ignore[arg-type]
        value, hung = await _execute(session, ReadVoicemailPin("101", "default", "default"))
        assert not hung
        return value

    (_, present), (_, missing) = captured()
    assert asyncio.run(read(present)) == SwitchPin("1234")
    assert asyncio.run(read(missing)) == SwitchPin(None)
