"""A wire-level fake FreeSWITCH, replaying real captures (tests/fakes/freeswitch_captures).

Every byte the fake sends comes from a capture of FreeSWITCH 1.11.3 (gzip copies in
``tests/fakes/freeswitch_captures``): event bodies are the captured events with only
the per-call values substituted (channel UUID, Application-UUID, application data,
calling user/domain/source, dialed number, PIN digits), and Content-Length recomputed.
With the captured values as parameters the output equals the capture byte for byte
(``tests/test_fake_freeswitch.py`` proves it).

Outbound side: :class:`FakeCall` connects to an ESL server as ``socket ... async full``
would. Inbound side: :class:`FakeInboundServer` is FreeSWITCH's event socket (auth, api,
sendevent NOTIFY, event, bgapi, shutdown). Both record everything they receive.
"""

from __future__ import annotations

import functools
import gzip
import re
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote

from tests.fakes import SWITCH_VOICEMAIL

CAPTURES = Path(__file__).resolve().parent / "freeswitch_captures"

# Values of the captured calls (8001 dials *70101 from 127.0.0.1:5072, domain 127.0.0.1).
CAP_ENDPOINT = "8001"
CAP_DOMAIN = "127.0.0.1"
CAP_IP, CAP_PORT = "127.0.0.1", "5072"
CAP_EXT = "101"
LOGIN_OK_UUID = "61040ec1-a1d3-492f-bd6c-09a55ab9a4a5"

DOMAIN_HEADERS = {"variable_sip_from_host", "variable_domain_name", "variable_sip_auth_realm",
                  "variable_requested_domain_name", "variable_sip_to_host",
                  "variable_sip_req_host"}
IP_HEADERS = {"Channel-Network-Addr", "Caller-Network-Addr", "variable_sip_network_ip",
              "variable_sip_received_ip", "variable_sip_via_host", "variable_sip_contact_host"}
PORT_HEADERS = {"variable_sip_network_port", "variable_sip_received_port",
                "variable_sip_via_port", "variable_sip_via_rport", "variable_sip_contact_port"}
DISCONNECT_BODY = b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
SHUTDOWN_BODY = b"The system is being shut down.\n"


def fs_encode(value: str) -> str:
    """switch_url_encode as seen in the captures: '/ , * ( ) - _ .' stay as they are."""
    return quote(value, safe="/,*()-_.")


def split_messages(data: bytes) -> list[tuple[list[bytes], bytes]]:
    """A captured s2c stream -> [(envelope header lines, body)]."""
    out = []
    i = 0
    while i < len(data):
        j = data.index(b"\n\n", i)
        lines = data[i:j].split(b"\n")
        size = 0
        for line in lines:
            if line.startswith(b"Content-Length: "):
                size = int(line.split(b": ", 1)[1])
        out.append((lines, data[j + 2:j + 2 + size]))
        i = j + 2 + size
    return out


def _load(name: str) -> list[tuple[list[bytes], bytes]]:
    return split_messages(gzip.decompress((CAPTURES / f"{name}.s2c.bin.gz").read_bytes()))


LOGIN_OK = _load("freeswitch-outbound-login-ok")
HANGUP_MID_PIN = _load("freeswitch-outbound-hangup-mid-pin")
INBOUND = _load("freeswitch-inbound-session")
# Registrations lab capture: 101 ok then unregistered, 102 wrong password, 999 unknown user,
# 8001 registered for 10 s and expired (see esl-registrations.txt of the lab captures).
REGISTRATIONS = _load("esl-registrations")
REG_FAILURE = REGISTRATIONS[6][1]  # to-user 102 from 127.0.0.1:5076
REG_EXPIRE = REGISTRATIONS[13][1]  # user 8001, contact at 127.0.0.1:5077
HANGUP_MID_PIN_UUID = re.search(rb"\nUnique-ID: ([0-9a-f-]+)\n",
                                b"\n" + b"\n".join(HANGUP_MID_PIN[0][0]) + b"\n").group(1).decode()


def _header(lines: list[bytes], name: bytes) -> bytes:
    for line in lines:
        if line.startswith(name + b": "):
            return line.split(b": ", 1)[1]
    return b""


def reply(text: str, extra: Sequence[tuple[str, str]] = ()) -> bytes:
    lines = ["Content-Type: command/reply", f"Reply-Text: {text}"]
    lines += [f"{k}: {v}" for k, v in extra]
    return ("\n".join(lines) + "\n\n").encode()


def api_response(body: bytes) -> bytes:
    return b"Content-Type: api/response\nContent-Length: %d\n\n" % len(body) + body


def disconnect_notice(body: bytes, session_uuid: str = "", disposition: str = "") -> bytes:
    head = [b"Content-Type: text/disconnect-notice"]
    if session_uuid:
        head.append(b"Controlled-Session-UUID: " + session_uuid.encode())
    if disposition:
        head.append(b"Content-Disposition: " + disposition.encode())
    head.append(b"Content-Length: %d" % len(body))
    return b"\n".join(head) + b"\n\n" + body


def event_envelope(body: bytes) -> bytes:
    return b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(body) + body


# Lines whose value follows the call's progress (the application running, the digits, the
# PIN read, the variable set): rendered afresh for every event.
PROGRESS_HEADERS = {"Application-UUID", "Application-Data", "variable_current_application_data",
                    "variable_read_result", "variable_hotdesk_pin", "variable_hotdesk_result",
                    "DTMF-Digit"}
# Lines FakeCall._value rewrites from the spec (who calls whom, from where).
SPEC_HEADERS = ({"variable_hotdesk_ext", "variable_hotdesk_action", "variable_DP_MATCH"}
                | DOMAIN_HEADERS | IP_HEADERS | PORT_HEADERS)
# Captured values FakeCall._value replaces wherever they occur (endpoint, domain, dialed).
SPEC_VALUES = (CAP_ENDPOINT, "%40" + CAP_DOMAIN, "*70" + CAP_EXT)


@functools.lru_cache(maxsize=64)
def compile_block(block: bytes, cap_uuid: str,
                  app: str | None = None) -> tuple[bytes | tuple[str, str], ...]:
    """A captured header block as runs of lines no call changes (joined, as bytes) and the
    lines FakeCall._value may change ((name, value)); ``app`` renames the application of
    a borrowed event. A line counts as unchanging only if none of _value's rules can
    touch it, so rendering the runs verbatim gives the same bytes as rendering each line."""
    lines = block.rstrip(b"\n").split(b"\n")
    if app is not None:  # an application the captures do not have: borrow set's events
        lines = [b"Application: " + app.encode() if ln.startswith(b"Application: ") else
                 b"variable_current_application: " + app.encode()
                 if ln.startswith(b"variable_current_application: ") else ln
                 for ln in lines]
    items: list[bytes | tuple[str, str]] = []
    run: list[bytes] = []
    for raw in lines:
        name, sep, value = raw.decode().partition(": ")
        if (sep and name not in PROGRESS_HEADERS and name not in SPEC_HEADERS
                and cap_uuid not in value and not any(v in value for v in SPEC_VALUES)):
            run.append(raw)
            continue
        if run:
            items.append(b"\n".join(run))
            run = []
        items.append((name, value))
    if run:
        items.append(b"\n".join(run))
    return tuple(items)


@dataclass
class CallSpec:
    """What the phone and the caller do in one fake call."""

    endpoint: str = CAP_ENDPOINT
    extension: str = CAP_EXT
    action: str = "login"
    domain: str = CAP_DOMAIN
    source: str = f"{CAP_IP}:{CAP_PORT}"
    digits: Sequence[str] = ("1234",)
    hangup_at: str | None = None  # None | "collect" | "disconnect"
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    dialed: str = ""
    capture: str = "login-ok"  # whose connect/answer templates to use
    # The directory's vm-password per user@domain, answered to ``api user_data``
    # (captured shape: the value as the body, "-ERR no reply" when there is none);
    # None = SWITCH_VOICEMAIL in any domain.
    vm_passwords: dict[str, str] | None = None
    # The prompt file does not exist: a real FreeSWITCH then ends play_and_get_digits at
    # once, collects nothing and leaves variable_read_result unset.
    missing_prompt: bool = False
    linger_scale: float = 0.01  # real seconds per linger second
    keying_seconds: float = 0.0  # the caller takes this long before the first PIN digit


class FakeCall:
    """One channel that FreeSWITCH hands to an outbound ESL server."""

    def __init__(self, spec: CallSpec) -> None:
        self.spec = spec
        self.commands: list[tuple[str, dict[str, str]]] = []
        self.sent = bytearray()
        self.hung_up = False
        self.lingering = False
        self.linger_time = 0
        self.app_data: dict[str, tuple[str, str]] = {}  # app -> (captured enc, actual enc)
        self.pin: str | None = None
        self.read_result: str | None = None
        self.var_set: tuple[str, str] | None = None
        self.pin_var = "hotdesk_pin"
        self.collects = 0
        self.sock: socket.socket | None = None
        self.error: BaseException | None = None
        ip, _, port = spec.source.rpartition(":")
        self.ip, self.port = ip, port
        self.dialed = spec.dialed or (f"*70{spec.extension}" if spec.action == "login" else "*71")
        # (name, captured value, capture) -> this call's line, for the lines that depend on
        # the spec alone (all but PROGRESS_HEADERS): the spec does not change during a call
        self._spec_lines: dict[tuple[str, str, str], bytes | None] = {}

    # -- rendering --------------------------------------------------------------------

    def _value(self, name: str, value: str, cap_uuid: str, app_uuid: str | None) -> str | None:
        s = self.spec
        value = value.replace(cap_uuid, s.uuid)
        if name == "Application-UUID" and app_uuid is not None:
            return app_uuid
        if name in ("Application-Data", "variable_current_application_data"):
            for captured, actual in self.app_data.values():
                if value == captured:
                    return actual
            return value
        if name == "variable_hotdesk_ext":
            return fs_encode(s.extension) if s.extension else None
        if name == "variable_hotdesk_action":
            return fs_encode(s.action)
        if name == "variable_read_result":
            return self.read_result
        if name in DOMAIN_HEADERS and value == CAP_DOMAIN:
            return fs_encode(s.domain)
        if name in IP_HEADERS and value == CAP_IP:
            return fs_encode(self.ip)
        if name in PORT_HEADERS and value == CAP_PORT:
            return self.port
        if s.endpoint != CAP_ENDPOINT:
            value = re.sub(r"(?<![0-9])8001(?![0-9])", fs_encode(s.endpoint), value)
        value = value.replace(f"%40{CAP_DOMAIN}%3A{CAP_PORT}",
                              f"%40{fs_encode(self.ip)}%3A{self.port}")
        value = re.sub(r"%40127\.0\.0\.1(?!%3A)", "%40" + fs_encode(s.domain), value)
        value = value.replace("*70101", fs_encode(self.dialed))
        if name == "variable_DP_MATCH":
            value = value.replace("%7C%3A101", f"%7C%3A{s.extension}" if s.extension else "")
        return value

    def _line(self, name: str, value: str, cap_uuid: str, app_uuid: str | None,
              digit: str | None) -> bytes | None:
        """One captured ``name: value`` line as this call sends it (None: left out)."""
        if name == "variable_hotdesk_pin":
            if self.pin is None:
                return None
            return f"variable_{self.pin_var}: {fs_encode(self.pin)}".encode()
        if name == "variable_hotdesk_result":
            if self.var_set is None:
                return None
            return f"variable_{self.var_set[0]}: {fs_encode(self.var_set[1])}".encode()
        if name == "DTMF-Digit" and digit is not None:
            return f"DTMF-Digit: {fs_encode(digit)}".encode()
        new = self._value(name, value, cap_uuid, app_uuid)
        return None if new is None else f"{name}: {new}".encode()

    def _render_lines(self, lines: list[bytes], cap_uuid: str, app_uuid: str | None = None,
                      digit: str | None = None) -> list[bytes]:
        """Every line through :meth:`_line`: the reference the compiled path must equal."""
        out: list[bytes] = []
        for raw in lines:
            name, _, value = raw.decode().partition(": ")
            line = self._line(name, value, cap_uuid, app_uuid, digit)
            if line is not None:
                out.append(line)
        return out

    def _render(self, block: bytes, cap_uuid: str, app_uuid: str | None = None,
                digit: str | None = None, app: str | None = None) -> bytes:
        """The captured header block rendered for this call, as ``_render_lines`` would,
        but only the lines a call can change go through ``_line`` (the others are copied
        as captured), and those that depend on the spec alone are rendered once per call:
        a login replays ~130 KB of events, and rendering every line cost ~20 ms of CPU."""
        out: list[bytes] = []
        for item in compile_block(block, cap_uuid, app):
            if isinstance(item, bytes):
                out.append(item)
                continue
            name, value = item
            if name in PROGRESS_HEADERS:
                line = self._line(name, value, cap_uuid, app_uuid, digit)
            else:
                key = (name, value, cap_uuid)
                if key not in self._spec_lines:
                    self._spec_lines[key] = self._line(name, value, cap_uuid, app_uuid, digit)
                line = self._spec_lines[key]
            if line is not None:
                out.append(line)
        return b"\n".join(out)

    def _event(self, template: tuple[list[bytes], bytes], cap_uuid: str,
               app_uuid: str | None = None, digit: str | None = None,
               app: str | None = None) -> bytes:
        body = self._render(template[1], cap_uuid, app_uuid, digit, app) + b"\n\n"
        return event_envelope(body)

    def connect_reply(self) -> bytes:
        cap, cap_uuid = self._capture()
        return self._render(b"\n".join(cap[0][0]), cap_uuid) + b"\n\n"

    def _capture(self) -> tuple[list[tuple[list[bytes], bytes]], str]:
        if self.spec.capture == "hangup-mid-pin":
            return HANGUP_MID_PIN, HANGUP_MID_PIN_UUID
        return LOGIN_OK, LOGIN_OK_UUID

    def linger_notice(self) -> bytes:
        s = self.spec
        return (b"Content-Type: text/disconnect-notice\nControlled-Session-UUID: %s\n"
                b"Content-Disposition: linger\nChannel-Name: sofia/internal/%s@%s\n"
                b"Linger-Time: %d\nContent-Length: 0\n\n"
                % (s.uuid.encode(), s.endpoint.encode(), s.domain.encode(), self.linger_time))

    # -- behaviour --------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        assert self.sock is not None
        self.sent += data
        self.sock.sendall(data)

    def _execute(self, headers: dict[str, str]) -> bool:
        """Run one sendmsg execute; False when the fake dropped the connection."""
        app = headers.get("execute-app-name", "")
        arg = headers.get("execute-app-arg", "")
        app_uuid = headers.get("Event-UUID", "")
        cap, cap_uuid = self._capture()
        known = {"answer": (4, 6), "play_and_get_digits": (8, 13), "set": (15, 16),
                 "playback": (18, 19), "hangup": (21, 23)}
        ex_i, done_i = known.get(app, (15, 16))
        source = cap if app in ("answer", "play_and_get_digits") else LOGIN_OK
        src_uuid = cap_uuid if source is cap else LOGIN_OK_UUID
        captured = unquote(_header(source[ex_i][1].split(b"\n"), b"Application-Data").decode())
        self.app_data[app] = (fs_encode(captured), fs_encode(arg))
        other = None if app in known else app
        if app == "set" and "=" in arg:
            self.var_set = tuple(arg.split("=", 1))  # type: ignore[assignment]
        self._send(self._event(source[ex_i], src_uuid, app_uuid, app=other))
        if app == "answer":
            self._send(self._event(source[5], src_uuid))
        if app == "play_and_get_digits":
            return self._collect(arg, app_uuid, source, src_uuid)
        if app == "hangup":
            self._send(self._event(LOGIN_OK[21 + 1], LOGIN_OK_UUID))
            self._send(self._event(LOGIN_OK[23], LOGIN_OK_UUID, app_uuid))
            self._hangup_tail(LOGIN_OK, LOGIN_OK_UUID, 24)
            return True
        self._send(self._event(source[done_i], src_uuid, app_uuid, app=other))
        return True

    def _collect(self, arg: str, app_uuid: str, cap: list, cap_uuid: str) -> bool:
        parts = arg.split(" ")
        if len(parts) > 7:
            self.pin_var = parts[7]
        self.collects += 1
        if self.spec.hangup_at == "disconnect" and self.collects == 1:
            assert self.sock is not None
            self.sock.close()
            return False
        if self.spec.hangup_at == "collect" and self.collects == 1:
            self.read_result = "failure"
            self._send(self._event(HANGUP_MID_PIN[9], HANGUP_MID_PIN_UUID))
            self._send(self._event(HANGUP_MID_PIN[10], HANGUP_MID_PIN_UUID, app_uuid))
            self._hangup_tail(HANGUP_MID_PIN, HANGUP_MID_PIN_UUID, 11)
            return True
        keyed = self.spec.digits[self.collects - 1] if self.collects <= len(self.spec.digits) \
            else ""
        if self.spec.missing_prompt:
            keyed = ""
        if self.spec.keying_seconds:
            time.sleep(self.spec.keying_seconds)
        for n, digit in enumerate(keyed):
            self._send(self._event(LOGIN_OK[9 + min(n, 3)], LOGIN_OK_UUID, digit=digit))
        pin = keyed.rstrip("#")
        self.pin = pin or None
        max_digits = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        # As a real FreeSWITCH: "success" when # or the maximum ended the entry, "timeout"
        # (with the digits) when the caller just stopped keying, "failure" for nothing.
        if self.spec.missing_prompt:
            self.read_result = None
        elif pin and (keyed.endswith("#") or len(pin) == max_digits):
            self.read_result = "success"
        else:
            self.read_result = "timeout" if pin else "failure"
        self._send(self._event(LOGIN_OK[13], LOGIN_OK_UUID, app_uuid))
        return True

    def _hangup_tail(self, cap: list, cap_uuid: str, first: int) -> None:
        """UNPARK, EXECUTE_COMPLETE socket, 2 x STATE, HANGUP_COMPLETE, linger notice."""
        for i in range(first, first + 5):
            self._send(self._event(cap[i], cap_uuid))
        self.hung_up = True
        self.hangup_at = time.monotonic()
        if self.lingering:
            self._send(self.linger_notice())

    def run(self, address: tuple[str, int], timeout: float = 10.0) -> None:
        """Connect to the ESL server and play the call until either side closes."""
        try:
            self.sock = socket.create_connection(address, timeout=timeout)
            # FreeSWITCH writes each event as it happens; so do we, without Nagle's wait.
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._serve(timeout)
        except (OSError, ValueError) as exc:
            self.error = exc
        finally:
            if self.sock is not None:
                self.sock.close()

    def _serve(self, timeout: float) -> None:
        assert self.sock is not None
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.hung_up:
                end = (self.hangup_at + self.linger_time * self.spec.linger_scale
                       if self.lingering else time.monotonic())
                if time.monotonic() >= end:
                    self._send(disconnect_notice(DISCONNECT_BODY, self.spec.uuid, "disconnect"))
                    return
                self.sock.settimeout(max(0.001, end - time.monotonic()))
            else:
                self.sock.settimeout(max(0.001, deadline - time.monotonic()))
            while b"\n\n" not in buf:
                try:
                    chunk = self.sock.recv(65536)
                except TimeoutError:
                    chunk = None
                if chunk is None:
                    break
                if not chunk:
                    return
                buf += chunk
            if b"\n\n" not in buf:
                continue
            block, buf = buf.split(b"\n\n", 1)
            lines = block.decode().split("\n")
            cmd = lines[0].strip()
            headers = dict(ln.split(": ", 1) for ln in lines[1:] if ": " in ln)
            self.commands.append((cmd, headers))
            if not self._command(cmd, headers):
                return

    def _command(self, cmd: str, headers: dict[str, str]) -> bool:
        if cmd == "connect":
            self._send(self.connect_reply())
        elif cmd == "myevents":
            self._send(reply("+OK Events Enabled"))
        elif cmd.startswith("linger"):
            parts = cmd.split()
            self.lingering = True
            self.linger_time = int(parts[1]) if len(parts) > 1 else 600
            self._send(reply(f"+OK will linger {self.linger_time} seconds"))
        elif cmd == "sendmsg":
            self._send(reply("+OK"))
            if not self.hung_up and headers.get("call-command") == "execute":
                return self._execute(headers)
        elif cmd == "exit":
            self._send(reply("+OK bye"))
            self._send(disconnect_notice(DISCONNECT_BODY, self.spec.uuid, "disconnect"))
            return False
        elif cmd.startswith("api user_data ") and cmd.endswith(" param vm-password"):
            who = cmd.split()[2]
            known = self.spec.vm_passwords
            value = (SWITCH_VOICEMAIL.get(who.split("@")[0], "") if known is None
                     else known.get(who, ""))
            self._send(api_response(value.encode() if value else b"-ERR no reply\n"))
        else:
            self._send(reply("-ERR command not found"))
        return True

    # -- what the adapter did -----------------------------------------------------------

    def executed(self) -> list[tuple[str, str]]:
        return [(h.get("execute-app-name", ""), h.get("execute-app-arg", ""))
                for c, h in self.commands if c == "sendmsg"]


def place_call(address: tuple[str, int], spec: CallSpec, timeout: float = 10.0) -> FakeCall:
    call = FakeCall(spec)
    call.run(address, timeout)
    return call


# ---------------------------------------------------------------------------------------
# Inbound side: FreeSWITCH's event socket (mod_event_socket listening on 8021)
# ---------------------------------------------------------------------------------------

INBOUND_REGISTER = INBOUND[5][1]
INBOUND_REGISTER = INBOUND[5][1]
INBOUND_SOFIA_REG = INBOUND[6][1]
INBOUND_UNREGISTER = INBOUND[9][1]
INBOUND_BGJOB = INBOUND[12][1]
BGJOB_UUID = "a909ecdb-f8f4-4c4d-9e15-9b8f48e53fa1"


@dataclass
class SofiaRegistration:
    """A phone registered on the profile; the defaults are the captured one."""

    user: str = "8001"
    ip: str = "127.0.0.1"
    port: str = "5072"
    call_id: str = "1-7543@127.0.0.1"
    agent: str = "HotdeskLab-SIPp"
    domain: str = "127.0.0.1"

    @property
    def contact(self) -> str:
        return f'"" <sip:{self.user}@{self.ip}:{self.port};transport=UDP>'

    def event_values(self, expires: int) -> dict[str, str]:
        """Header -> value of the captured sofia::register / unregister bodies."""
        values = {name: self.user for name in (
            "from-user", "to-user", "username", "sip_number_alias", "sip_auth_username",
            "number_alias", "user_name", "accountcode", "effective_caller_id_number")}
        values.update({"contact": self.contact, "call-id": self.call_id,
                       "network-ip": self.ip, "network-port": self.port,
                       "user-agent": self.agent, "expires": str(expires),
                       "effective_caller_id_name": f"Hotdesk phone {self.user}"})
        return values

    def listing_block(self) -> bytes:
        """This registration's block of ``sofia status profile internal reg``, cut from
        the capture with its values substituted."""
        body = INBOUND_SOFIA_REG
        block = body[body.index(b"Call-ID:"):body.index(b"\n\nTotal items")]
        cap = SofiaRegistration()
        for old, new in ((cap.contact, self.contact), (cap.call_id, self.call_id),
                         (f"{cap.user}@{cap.domain}", f"{self.user}@{self.domain}"),
                         (f"\t{cap.agent}\n", f"\t{self.agent}\n"),
                         (f"IP:         \t{cap.ip}\n", f"IP:         \t{self.ip}\n"),
                         (f"Port:       \t{cap.port}\n", f"Port:       \t{self.port}\n"),
                         (f"Auth-User:  \t{cap.user}\n", f"Auth-User:  \t{self.user}\n")):
            block = block.replace(old.encode(), new.encode())
        return block


def substitute(body: bytes, values: dict[str, str]) -> bytes:
    """A captured event body with the named headers' values replaced (URL-encoded)."""
    lines = body.split(b"\n")
    for i, line in enumerate(lines):
        name = line.split(b": ", 1)[0].decode()
        if b": " in line and name in values:
            lines[i] = f"{name}: {fs_encode(values[name])}".encode()
    return b"\n".join(lines)


def reg_listing(registrations: Sequence[SofiaRegistration]) -> bytes:
    """``sofia status profile internal reg`` for these registrations, framed as captured."""
    body = INBOUND_SOFIA_REG
    head = body[:body.index(b"Call-ID:")]
    tail = body[body.index(b"\n\nTotal items") + 2:]
    tail = tail.replace(b"returned: 1", b"returned: %d" % len(registrations))
    return head + b"".join(r.listing_block() + b"\n\n" for r in registrations) + tail


class FakeInboundServer:
    """FreeSWITCH's event socket: auth, api, sendevent NOTIFY, event, bgapi, shutdown."""

    def __init__(self, password: str = "ClueCon", host: str = "127.0.0.1", port: int = 0) -> None:
        self.password = password
        self.directory: dict[str, str] = {}  # "user@domain" -> vm-password
        self.notifies: list[list[tuple[str, str]]] = []
        self.commands: list[str] = []
        self.auth_failures = 0
        self.uuids: list[str] = []  # handed out (in order) as sendevent / bgapi UUIDs
        self.silent = False  # accept commands but never answer (a hung switch)
        # Drop a connection instead of answering its command number N (counted over all
        # connections after auth, from 1): FreeSWITCH lost in the middle of a batch.
        self.drop_at: int | None = None
        # Registrations on the profile; None = the captured listing verbatim.
        self.registrations: list[SofiaRegistration] | None = None
        self._host, self._port = host, port
        self._lsock: socket.socket | None = None
        self._conns: list[tuple[socket.socket, set[str]]] = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._running = False
        self._threads: list[threading.Thread] = []

    @property
    def address(self) -> tuple[str, int]:
        return self._host, self._port

    def start(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        self._port = sock.getsockname()[1]
        sock.listen(16)
        sock.settimeout(0.1)
        self._lsock = sock
        self._running = True
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)

    def _accept(self) -> None:
        lsock = self._lsock
        assert lsock is not None
        while self._running:
            try:
                conn, _ = lsock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._running:
                conn.close()
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        """Stop listening and drop every connection (FreeSWITCH gone)."""
        self._running = False
        if self._lsock is not None:
            self._lsock.close()
        with self._lock:
            conns = list(self._conns)
            self._conns.clear()
        for conn, _ in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        for t in self._threads:
            t.join(2.0)
        self._threads.clear()

    def shutdown(self) -> None:
        """FreeSWITCH shuts down: notice to every client, close, stop listening."""
        with self._lock:
            conns = list(self._conns)
        for conn, _ in conns:
            try:
                conn.sendall(disconnect_notice(SHUTDOWN_BODY))
            except OSError:
                pass
        self.stop()

    def push_event(self, body: bytes, subclass: str = "") -> None:
        """Send an event to every client subscribed to it."""
        with self._lock:
            conns = list(self._conns)
        for conn, subs in conns:
            if subclass in subs or "CUSTOM" in subs and subclass.startswith("sofia::"):
                conn.sendall(event_envelope(body))

    def _serve(self, conn: socket.socket) -> None:
        subs: set[str] = set()
        with self._lock:
            self._conns.append((conn, subs))
        buf = b""
        authed = False
        try:
            # stop() may close a connection accepted a moment before: OSError, like a RST.
            conn.settimeout(30.0)
            # As mod_event_socket (listener_run sets SWITCH_SO_TCP_NODELAY): the replies
            # to a pipelined batch leave one by one without Nagle's wait for an ACK.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.sendall(b"Content-Type: auth/request\n\n")
            while True:
                while b"\n\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                block, buf = buf.split(b"\n\n", 1)
                lines = block.decode("utf-8", "replace").split("\n")
                cmd = lines[0]
                if not authed:
                    if cmd == f"auth {self.password}":
                        authed = True
                        conn.sendall(reply("+OK accepted"))
                        continue
                    self.auth_failures += 1
                    conn.sendall(reply("-ERR invalid"))
                    conn.sendall(disconnect_notice(DISCONNECT_BODY))
                    return
                with self._cond:
                    self.commands.append(cmd)
                    self._cond.notify_all()
                if self.drop_at is not None and len(self.commands) >= self.drop_at:
                    return
                if self.silent:
                    continue
                if not self._command(conn, cmd, lines[1:], subs):
                    return
        except OSError:
            return
        finally:
            with self._lock:
                self._conns[:] = [c for c in self._conns if c[0] is not conn]
            conn.close()

    def _next_uuid(self) -> str:
        return self.uuids.pop(0) if self.uuids else str(uuid.uuid4())

    def _command(self, conn: socket.socket, cmd: str, lines: list[str], subs: set[str]) -> bool:
        if cmd.startswith("api "):
            conn.sendall(api_response(self._api(cmd[4:])))
        elif cmd.startswith("sendevent "):
            headers = [tuple(ln.split(": ", 1)) for ln in lines if ": " in ln]
            with self._cond:
                self.notifies.append(headers)  # type: ignore[arg-type]
                self._cond.notify_all()
            conn.sendall(reply(f"+OK {self._next_uuid()}"))
        elif cmd.startswith("event plain"):
            subs.update(cmd.split()[2:])
            conn.sendall(reply("+OK event listener enabled plain"))
        elif cmd.startswith("bgapi "):
            job = self._next_uuid()
            conn.sendall(reply(f"+OK Job-UUID: {job}", [("Job-UUID", job)]))
            if "BACKGROUND_JOB" in subs:
                conn.sendall(event_envelope(INBOUND_BGJOB.replace(BGJOB_UUID.encode(),
                                                                  job.encode())))
        elif cmd == "exit":
            conn.sendall(reply("+OK bye"))
            conn.sendall(disconnect_notice(DISCONNECT_BODY))
            return False
        else:
            conn.sendall(reply("-ERR command not found"))
        return True

    def _api(self, cmd: str) -> bytes:
        parts = cmd.split()
        if len(parts) == 4 and parts[0] == "user_data" and parts[2] == "param":
            value = self.directory.get(parts[1], "") if parts[3] == "vm-password" else ""
            return value.encode() if value else b"-ERR no reply\n"
        if cmd.startswith("sofia status profile") and cmd.endswith(" reg"):
            if self.registrations is None:
                return INBOUND_SOFIA_REG
            return reg_listing(self.registrations)
        return f"-ERR {parts[0] if parts else ''} Command not found!\n".encode()

    def register(self, reg: SofiaRegistration, expires: int = 3600) -> None:
        """The phone registers: the captured sofia::register event, values substituted."""
        if self.registrations is None:
            self.registrations = []
        self.registrations = [r for r in self.registrations if r.contact != reg.contact]
        self.registrations.append(reg)
        self.push_event(substitute(INBOUND_REGISTER, reg.event_values(expires)),
                        "sofia::register")

    def unregister(self, reg: SofiaRegistration) -> None:
        """The phone unregisters (Expires: 0): the captured sofia::unregister event."""
        self.registrations = [r for r in self.registrations or [] if r.contact != reg.contact]
        self.push_event(substitute(INBOUND_UNREGISTER, reg.event_values(0)),
                        "sofia::unregister")

    def refuse(self, reg: SofiaRegistration) -> None:
        """A REGISTER answered 403 (wrong password or unknown user): the captured
        sofia::register_failure, values substituted."""
        self.push_event(substitute(REG_FAILURE, {"to-user": reg.user, "network-ip": reg.ip,
                                                 "network-port": reg.port}),
                        "sofia::register_failure")

    def expire(self, reg: SofiaRegistration) -> None:
        """The registration ran out: the captured sofia::expire, values substituted."""
        self.registrations = [r for r in self.registrations or [] if r.contact != reg.contact]
        self.push_event(substitute(REG_EXPIRE, {
            "call-id": reg.call_id, "user": reg.user, "username": reg.user,
            "contact": reg.contact, "network-ip": reg.ip, "network-port": reg.port,
            "user-agent": reg.agent}), "sofia::expire")

    def wait_notifies(self, count: int, timeout: float = 5.0) -> list[list[tuple[str, str]]]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.notifies) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return list(self.notifies)
