"""Just enough SIP (RFC 3261) for PnP: parse a datagram, answer a SUBSCRIBE, build a NOTIFY.

Everything that comes off the wire goes through :func:`parse_message`, which either
returns a well-formed message or raises :class:`SipParseError`; it never raises anything
else, whatever the bytes (a hypothesis test holds it to that).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

from hotdesk.mac import InvalidMac, normalise_mac

MAX_DATAGRAM = 4096
CRLF = "\r\n"

# RFC 3261 7.3.3 compact header names.
_COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact",
            "l": "content-length", "c": "content-type", "o": "event", "k": "supported",
            "s": "subject", "e": "content-encoding"}
_TOKEN = re.compile(r"^[A-Za-z0-9.!%*_+`'~\-]+$")
_REQUEST_LINE = re.compile(r"^([A-Za-z]+) (\S+) SIP/2\.0$")
_STATUS_LINE = re.compile(r"^SIP/2\.0 ([1-6][0-9]{2}) ?(.*)$")
_MAC_IN_URI = re.compile(
    r"MAC(?:%3[Aa]|:|=|%3[Dd])\s*([0-9A-Fa-f]{2}(?:[-:.]?[0-9A-Fa-f]{2}){5})(?![0-9A-Fa-f])")


class SipParseError(ValueError):
    """Not a SIP message we can use; the message says what is wrong (one line)."""


@dataclass
class SipMessage:
    method: str = ""  # requests
    uri: str = ""
    status: int = 0  # responses
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        return bool(self.method)

    def get_all(self, name: str) -> list[str]:
        key = _canonical(name)
        return [v for n, v in self.headers if _canonical(n) == key]

    def get(self, name: str, default: str = "") -> str:
        values = self.get_all(name)
        return values[0] if values else default

    def cseq(self) -> tuple[int, str]:
        number, _, method = self.get("CSeq").partition(" ")
        return int(number), method.strip()


def _canonical(name: str) -> str:
    low = name.strip().lower()
    return _COMPACT.get(low, low)


def parse_message(data: bytes) -> SipMessage:
    """Parse one UDP datagram as a SIP request or response."""
    if len(data) > MAX_DATAGRAM:
        raise SipParseError(f"datagram of {len(data)} bytes is larger than {MAX_DATAGRAM}")
    if not data.strip():
        raise SipParseError("empty datagram (keep-alive)")
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("header block is not UTF-8") from None
    lines = text.replace("\r\n", "\n").split("\n")
    start = lines[0].strip()
    msg = SipMessage()
    if m := _REQUEST_LINE.match(start):
        msg.method, msg.uri = m.group(1).upper(), m.group(2)
    elif m := _STATUS_LINE.match(start):
        msg.status, msg.reason = int(m.group(1)), m.group(2)
    else:
        raise SipParseError(f"not a SIP start line: {start[:60]!r}")
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t":
            if not msg.headers:
                raise SipParseError("continuation line before any header")
            name, value = msg.headers[-1]
            msg.headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not _TOKEN.match(name):
            raise SipParseError(f"malformed header line {line[:60]!r}")
        msg.headers.append((name, value.strip()))
    for required in ("Via", "From", "To", "Call-ID", "CSeq"):
        if not msg.get(required):
            raise SipParseError(f"missing {required} header")
    number, _, method = msg.get("CSeq").partition(" ")
    if not number.isdigit() or not method.strip() or len(number) > 10:
        raise SipParseError(f"malformed CSeq {msg.get('CSeq')[:40]!r}")
    if msg.is_request and method.strip().upper() != msg.method:
        raise SipParseError("CSeq method does not match the request method")
    length = msg.get("Content-Length")
    if length:
        if not length.isdigit() or int(length) > len(body):
            raise SipParseError(f"Content-Length {length[:12]!r} does not match the body")
        body = body[:int(length)]
    msg.body = body
    return msg


def split_params(value: str) -> tuple[str, dict[str, str]]:
    """``ua-profile;vendor="Yealink";model=T54W`` -> (``ua-profile``, {vendor: Yealink, …}).

    Semicolons inside quotes do not split; quotes are removed; names are lower-cased.
    """
    parts: list[str] = []
    current, quoted = [], False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        if ch == ";" and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    params: dict[str, str] = {}
    for part in parts[1:]:
        name, _, val = part.partition("=")
        val = val.strip()
        if len(val) >= 2 and val[0] == val[-1] == '"':
            val = val[1:-1]
        params[name.strip().lower()] = val
    return parts[0].strip(), params


@dataclass(frozen=True)
class Via:
    transport: str
    host: str
    port: int | None
    params: dict[str, str]


def parse_via(value: str) -> Via:
    """The first Via of a header value (``SIP/2.0/UDP 192.0.2.5:5060;rport;branch=…``)."""
    first = value.split(",")[0]
    sent, params = split_params(first)
    proto, _, hostport = sent.partition(" ")
    pieces = proto.replace(" ", "").split("/")
    if len(pieces) != 3 or pieces[0].upper() != "SIP" or not hostport.strip():
        raise SipParseError(f"malformed Via {first[:60]!r}")
    hostport = hostport.strip()
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port_text = rest.lstrip(":")
    else:
        host, _, port_text = hostport.partition(":")
    if port_text and not (port_text.isdigit() and 0 < int(port_text) < 65536):
        raise SipParseError(f"malformed Via port {port_text[:10]!r}")
    return Via(pieces[2].upper(), host, int(port_text) if port_text else None, params)


def response_address(via: Via, source: tuple[str, int]) -> tuple[str, int]:
    """Where a response to this request goes (RFC 3261 18.2.2 with RFC 3581 rport).

    rport present -> the packet's source ip and port. Otherwise the ``received`` address
    (or the source address when sent-by differs) and the sent-by port (default 5060).
    """
    src_ip, src_port = source
    if "rport" in via.params:
        return src_ip, src_port
    return src_ip, via.port or 5060


def extract_mac(msg: SipMessage) -> str | None:
    """The phone's MAC from the request URI, From, To or the Event's ``mac`` parameter."""
    _, event = split_params(msg.get("Event"))
    candidates = [msg.uri, msg.get("From"), msg.get("To")]
    for text in candidates:
        if m := _MAC_IN_URI.search(text):
            try:
                return normalise_mac(m.group(1))
            except InvalidMac:
                continue
    if event.get("mac"):
        try:
            return normalise_mac(event["mac"])
        except InvalidMac:
            return None
    return None


def new_tag() -> str:
    return secrets.token_hex(6)


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)


def build_response(req: SipMessage, status: int, reason: str, to_tag: str,
                   extra: list[tuple[str, str]] | None = None,
                   received: str | None = None) -> bytes:
    """A response echoing Via (with ``received``/``rport`` filled in), From, To, Call-ID, CSeq."""
    lines = [f"SIP/2.0 {status} {reason}"]
    vias = req.get_all("Via")
    for i, via in enumerate(vias):
        if i == 0 and received is not None:
            via = _fill_received(via, received)
        lines.append(f"Via: {via}")
    to = req.get("To")
    if ";tag=" not in to.lower():
        to = f"{to};tag={to_tag}"
    lines += [f"From: {req.get('From')}", f"To: {to}", f"Call-ID: {req.get('Call-ID')}",
              f"CSeq: {req.get('CSeq')}"]
    lines += [f"{n}: {v}" for n, v in (extra or [])]
    lines.append("Content-Length: 0")
    return (CRLF.join(lines) + CRLF + CRLF).encode()


def _fill_received(via: str, source: str) -> str:
    """RFC 3581: put the source ip (and port, if rport was asked for) into the top Via."""
    ip, _, port = source.rpartition(":")
    first, sep, rest = via.partition(",")
    sent, params = split_params(first)
    out = [sent]
    for part in first.split(";")[1:]:
        name = part.split("=")[0].strip().lower()
        if name in ("received", "rport"):
            continue
        out.append(part.strip())
    out.append(f"received={ip}")
    if "rport" in params:
        out.append(f"rport={port}")
    return ";".join(out) + (sep + rest if sep else "")


@dataclass(frozen=True)
class NotifyRequest:
    """A PnP NOTIFY carrying a provisioning URL, and how to match its 200 OK."""

    data: bytes
    call_id: str
    cseq: int
    branch: str


def build_notify(*, request_uri: str, local: tuple[str, int], from_: str, to: str,
                 call_id: str, cseq: int, event: str, url: str) -> NotifyRequest:
    """The NOTIFY that hands a phone its provisioning URL (``Content-Type: application/url``).

    ``from_`` is the SUBSCRIBE's To with our tag, ``to`` the SUBSCRIBE's From.
    """
    branch = new_branch()
    body = url.encode()
    host = f"[{local[0]}]" if ":" in local[0] else local[0]
    lines = [
        f"NOTIFY {request_uri} SIP/2.0",
        f"Via: SIP/2.0/UDP {host}:{local[1]};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: {from_}",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} NOTIFY",
        f"Contact: <sip:{host}:{local[1]}>",
        f"Event: {event}",
        "Subscription-State: terminated;reason=timeout",
        "Content-Type: application/url",
        f"Content-Length: {len(body)}",
    ]
    return NotifyRequest((CRLF.join(lines) + CRLF + CRLF).encode() + body, call_id, cseq,
                         branch)


def contact_uri(msg: SipMessage) -> str:
    """The URI inside the first Contact (``<sip:…>`` or bare), without header parameters."""
    value = msg.get("Contact")
    if "<" in value and ">" in value:
        return value[value.index("<") + 1:value.index(">")]
    return value.split(";")[0].strip()


def is_response_to(msg: SipMessage, notify: NotifyRequest) -> bool:
    if msg.is_request or msg.get("Call-ID") != notify.call_id:
        return False
    try:
        number, method = msg.cseq()
    except ValueError:
        return False
    return number == notify.cseq and method.upper() == "NOTIFY"
