"""The AMI fake of tests/fakes/asterisk_accounts.py against real Asterisk 22 transcripts
(tests/fakes/asterisk_captures/): each captured action replayed, each reply byte-identical.
ListCommands lists every action of the real switch; the fake lists those hotdesk uses,
each line exactly as the switch printed it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.fakes.asterisk_accounts import AccountsAMI, ThreadedAMI

CAPTURES = Path(__file__).parent / "fakes" / "asterisk_captures"


def lab_switch(username: str, secret: str, write: set[str] | None) -> AccountsAMI:
    """The lab's state in the captures: pjsip user 101, voicemail 101, the hotdesk
    dialplan included from [phones] and [hotdesk-idle]."""
    ami = AccountsAMI(username=username, secret=secret, write=write)
    ami.add_account("101", "secret101", context="phones", max_contacts=2)
    ami.sorcery[("endpoint", "101", "callerid")] = '"Alice" <101>'
    ami.voicemail["101@default"] = "1234"
    ami.hotdesk_dialplan(["phones", "hotdesk-idle"])
    ami.includes["hotdesk-idle"].append("hotdesk-idle-refuse")
    ami.dialplan["hotdesk-idle-refuse"] = []
    # the lab's dialplan passes the tenant too (a newer extensions_hotdesk.conf)
    ami.dialplan["hotdesk-features"] = [
        (p, app, data.replace("${CHANNEL(endpoint)}", "${CHANNEL(endpoint)},${HOTDESK_TENANT}")
         if app == "AGI" else data, label)
        for p, app, data, label in ami.dialplan["hotdesk-features"]]
    return ami


def blocks(data: bytes) -> list[bytes]:
    return [b + b"\r\n\r\n" for b in data.split(b"\r\n\r\n") if b]


def action_id(block: bytes) -> bytes:
    for line in block.split(b"\r\n"):
        if line.startswith(b"ActionID: "):
            return line[10:]
    return b""


@pytest.mark.parametrize("name,username,secret,write", [
    ("ami-getvar", "hotdesk", "labsecret", None),
    ("ami-getvar.weak", "weak", "weaksecret", {"system"}),
    ("ami-showdialplan", "hotdesk", "labsecret", None),
])
def test_fake_replies_as_the_real_switch(name, username, secret, write):
    c2s = (CAPTURES / f"{name}.c2s.bin").read_bytes()
    s2c = (CAPTURES / f"{name}.s2c.bin").read_bytes()
    banner, _, rest = s2c.partition(b"\r\n")
    captured = blocks(rest)
    compared = 0
    with ThreadedAMI(lab_switch(username, secret, write)) as ami, \
            socket.create_connection(("127.0.0.1", ami.port), timeout=5) as sock:
        stream = sock.makefile("rb")
        assert stream.readline() == banner + b"\r\n"
        for action in blocks(c2s):
            wanted = [b for b in captured if action_id(b) == action_id(action)]
            sock.sendall(action)
            for expected in wanted:
                got = b""
                while not got.endswith(b"\r\n\r\n"):
                    got += stream.readline()
                if b"ListCommands" in action:
                    lines = got.split(b"\r\n")
                    assert lines[:2] == expected.split(b"\r\n")[:2]
                    assert set(lines[2:-2]) <= set(expected.split(b"\r\n")), got
                else:
                    assert got == expected, action
                compared += 1
    assert compared == len(captured)
