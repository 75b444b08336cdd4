"""The fake FreeSWITCH reproduces the reference captures byte for byte."""

from __future__ import annotations

import socket
import threading

from tests.conftest import reference_bytes
from tests.fakes.freeswitch import (
    HANGUP_MID_PIN,
    HANGUP_MID_PIN_UUID,
    LOGIN_OK,
    LOGIN_OK_UUID,
    CallSpec,
    FakeCall,
    FakeInboundServer,
    compile_block,
    split_messages,
)


def _replay_outbound(c2s: bytes, spec: CallSpec) -> bytes:
    """Be the ESL server: send the captured client bytes, collect all the fake sends."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)
    call = FakeCall(spec)
    thread = threading.Thread(target=call.run, args=(server.getsockname(),), daemon=True)
    thread.start()
    conn, _ = server.accept()
    conn.settimeout(10)
    conn.sendall(c2s)
    received = b""
    while chunk := conn.recv(65536):
        received += chunk
    conn.close()
    server.close()
    thread.join(10)
    assert not thread.is_alive()
    return received


def test_outbound_login_ok_matches_capture():
    expected = reference_bytes("freeswitch-outbound-login-ok.s2c.bin")
    got = _replay_outbound(reference_bytes("freeswitch-outbound-login-ok.c2s.bin"),
                           CallSpec(uuid=LOGIN_OK_UUID, digits=["1234"]))
    assert len(got) == len(expected)
    assert got == expected


def test_outbound_hangup_mid_pin_matches_capture():
    expected = reference_bytes("freeswitch-outbound-hangup-mid-pin.s2c.bin")
    got = _replay_outbound(reference_bytes("freeswitch-outbound-hangup-mid-pin.c2s.bin"),
                           CallSpec(uuid=HANGUP_MID_PIN_UUID, hangup_at="collect",
                                    capture="hangup-mid-pin"))
    assert got == expected


def test_outbound_parameters_change_only_call_values():
    call = FakeCall(CallSpec(endpoint="8002", extension="102", domain="tenant-b.example",
                             source="192.0.2.7:5062"))
    text = call.connect_reply().decode()
    assert "variable_user_name: 8002\n" in text
    assert "variable_hotdesk_ext: 102\n" in text
    assert "variable_domain_name: tenant-b.example\n" in text
    assert "variable_sip_received_ip: 192.0.2.7\n" in text
    assert "variable_sip_received_port: 5062\n" in text
    assert "Caller-Destination-Number: *70102\n" in text
    assert text.endswith("Content-Type: command/reply\nReply-Text: %2BOK%0A\n"
                         "Socket-Mode: async\nControl: full\n\n")


def test_outbound_rendering_of_unchanging_lines_equals_rendering_every_line():
    """The fake copies the captured lines no call value can change and renders only the
    others: for another caller, phone, domain, address and call state, every captured
    event and connect reply comes out exactly as rendering each line would make it."""
    spec = CallSpec(endpoint="8002", extension="1017", domain="tenant-b.example",
                    source="192.0.2.7:5062")
    call, reference = FakeCall(spec), FakeCall(spec)
    for fake in (call, reference):
        fake.app_data["answer"] = ("", "x")
        fake.pin, fake.read_result, fake.var_set = "90210", "success", ("HOTDESK_RESULT", "ok")
    copied = 0
    for capture, cap_uuid in ((LOGIN_OK, LOGIN_OK_UUID), (HANGUP_MID_PIN, HANGUP_MID_PIN_UUID)):
        blocks = [b"\n".join(capture[0][0])] + [body for _, body in capture[1:] if body]
        for block in blocks:
            lines = block.rstrip(b"\n").split(b"\n")
            expected = b"\n".join(reference._render_lines(lines, cap_uuid, "app-uuid", "7"))
            assert call._render(block, cap_uuid, "app-uuid", "7") == expected
            copied += sum(isinstance(item, bytes) for item in compile_block(block, cap_uuid))
    assert copied  # the shortcut is taken at all
    borrowed = call._render(LOGIN_OK[15][1], LOGIN_OK_UUID, app="db").decode()
    assert "\nApplication: db\n" in borrowed and "\nvariable_current_application: db\n" in borrowed


class _Client:
    def __init__(self, address):
        self.sock = socket.create_connection(address, timeout=10)
        self.data = b""

    def upto(self, n: int) -> None:
        while len(self.data) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.data += chunk

    def rest(self) -> None:
        while chunk := self.sock.recv(65536):
            self.data += chunk


def _ends(stream: bytes) -> list[int]:
    ends, pos = [], 0
    for lines, body in split_messages(stream):
        pos += len(b"\n".join(lines)) + 2 + len(body)
        ends.append(pos)
    return ends


def _commands(c2s: bytes) -> list[bytes]:
    return [block + b"\n\n" for block in c2s.split(b"\n\n") if block]


def test_inbound_session_matches_capture():
    expected = reference_bytes("freeswitch-inbound-session.s2c.bin")
    cmds = _commands(reference_bytes("freeswitch-inbound-session.c2s.bin"))
    ends = _ends(expected)
    fake = FakeInboundServer()
    fake.directory["101@127.0.0.1"] = "1234"
    fake.uuids = ["e75b5ca7-5dd4-4b34-af16-2fdda414aa69", "40ea91e5-5a57-457e-9884-48c1b18b6c6b",
                  "a909ecdb-f8f4-4c4d-9e15-9b8f48e53fa1"]
    fake.start()
    try:
        from tests.fakes.freeswitch import INBOUND_REGISTER, INBOUND_UNREGISTER
        c = _Client(fake.address)
        c.upto(ends[0])  # auth/request
        # message index reached after each command, in capture order
        plan = [(0, 1), (1, 2), (2, 3), (3, 4)]
        for cmd_i, msg_i in plan:
            c.sock.sendall(cmds[cmd_i])
            c.upto(ends[msg_i])
        fake.push_event(INBOUND_REGISTER, "sofia::register")
        c.upto(ends[5])
        for cmd_i, msg_i in [(4, 6), (5, 7), (6, 8)]:
            c.sock.sendall(cmds[cmd_i])
            c.upto(ends[msg_i])
        fake.push_event(INBOUND_UNREGISTER, "sofia::unregister")
        c.upto(ends[9])
        c.sock.sendall(cmds[7])
        c.upto(ends[10])
        c.sock.sendall(cmds[8])
        c.upto(ends[12])
        fake.shutdown()
        c.rest()
        assert c.data == expected
        assert [h for h in fake.notifies[0]] == [
            ("profile", "internal"), ("user", "8001"), ("host", "127.0.0.1"),
            ("content-type", "application/simple-message-summary"),
            ("event-string", "check-sync;reboot=false")]
    finally:
        fake.stop()


def test_inbound_authfail_matches_capture():
    expected = reference_bytes("freeswitch-inbound-session.authfail.s2c.bin")
    fake = FakeInboundServer()
    fake.start()
    try:
        c = _Client(fake.address)
        c.sock.sendall(reference_bytes("freeswitch-inbound-session.authfail.c2s.bin"))
        c.rest()
        assert c.data == expected
        assert fake.auth_failures == 1
    finally:
        fake.stop()


def test_inbound_pipelined_batch_matches_capture():
    """Eight commands in one write (the drains' batches): every reply in order, the two
    failing ones (mod_db's "!err!", an unknown api command) in their place."""
    from tests.conftest import CAPTURES
    from tests.fakes.freeswitch_emergency import FakeEmergencyFreeSWITCH

    folder = CAPTURES["freeswitch"]
    c2s = (folder / "esl-pipelined-batch.c2s.bin").read_bytes()
    expected = (folder / "esl-pipelined-batch.s2c.bin").read_bytes()
    cmds = _commands(c2s)
    assert len(cmds) == 10  # auth, the batch of eight, exit
    ends = _ends(expected)
    fake = FakeEmergencyFreeSWITCH()
    fake.uuids = ["f5f260ab-1247-4d2d-95bf-6cb3e35bcc29", "73425df5-1af5-43bb-8ad3-2a1eed588b95"]
    fake.start()
    try:
        c = _Client(fake.address)
        c.upto(ends[0])
        c.sock.sendall(cmds[0])
        c.upto(ends[1])
        c.sock.sendall(b"".join(cmds[1:9]))
        c.upto(ends[9])
        c.sock.sendall(cmds[9])
        c.rest()
        assert c.data == expected
        assert [dict(n)["event-string"] for n in fake.notifies] == ["check-sync;reboot=false"] * 2
        assert fake.db == {}  # inserted, then both deleted
    finally:
        fake.stop()
