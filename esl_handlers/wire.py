"""Event Socket framing, shared by the outbound call server and the inbound connection.

A message is a block of ``Name: value`` lines ended by an empty line, followed by a body
of exactly ``Content-Length`` bytes when that header is present. Lines end with a bare LF.
Event bodies are themselves header blocks whose values are URL-encoded; the ``connect``
reply carries its channel headers URL-encoded in the envelope itself. Values are decoded
one by one (never the whole block), so an encoded ``%0A`` stays inside its value.

Everything here is bounded: a peer that sends garbage, an endless header block or a huge
Content-Length gets :class:`ProtocolError`, never an unbounded read.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

MAX_HEADER_LINES = 1000
MAX_LINE = 64 * 1024
MAX_BODY = 4 * 1024 * 1024

# FreeSWITCH's switch_url_encode leaves these unencoded (seen in the captures).
_SAFE = "/,*()-_.!~'$"


class ProtocolError(Exception):
    """The peer sent something that is not Event Socket framing."""


class ConnectionClosed(Exception):
    """The peer closed the TCP connection (possibly mid-message)."""


def url_decode(value: str) -> str:
    return unquote(value)


def url_encode(value: str) -> str:
    """Encode a header value the way FreeSWITCH does (``+`` -> ``%2B``, space -> ``%20``)."""
    return quote(value, safe=_SAFE)


@dataclass
class Message:
    """One framed message: envelope headers (as sent) and the raw body."""

    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    @property
    def reply_text(self) -> str:
        return url_decode(self.headers.get("Reply-Text", ""))

    def event(self) -> dict[str, str]:
        """The decoded event headers of a text/event-plain message (or the connect reply)."""
        if self.content_type == "text/event-plain":
            return parse_headers(self.body.split(b"\n\n", 1)[0])
        return {k: url_decode(v) for k, v in self.headers.items()}

    def event_headers(self) -> EventHeaders:
        """The same headers as :meth:`event` for a text/event-plain message, each decoded
        only when asked for."""
        return EventHeaders(self.body)


def parse_headers(block: bytes) -> dict[str, str]:
    """``Name: url-encoded value`` lines -> decoded dict (first occurrence wins)."""
    headers: dict[str, str] = {}
    for raw in block.decode("utf-8", "replace").split("\n"):
        if not raw:
            continue
        name, sep, value = raw.partition(": ")
        if not sep:
            name, sep, value = raw.partition(":")
        if sep and name not in headers:
            headers[name.strip()] = url_decode(value.strip())
    return headers


# Bytes of header names: a name found right after one of these is part of a longer
# name, or inside a value, never a header of its own.
_NAME_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def header_value(body: bytes, name: str) -> str | None:
    """``parse_headers(<body's header block>).get(name)``, without splitting or decoding
    the other lines. A channel event carries ~180 headers and the call path reads two
    or three of them; decoding all of them was half the server's CPU per call.

    Every occurrence of ``name`` in the block is looked at: inside a longer name or a
    value it is skipped, as ``name: `` at a line start it is a candidate (the first
    wins); any other spelling (``name:v``, `` name: v``) leaves the block to
    parse_headers, so the answer is always parse_headers'."""
    end = body.find(b"\n\n")
    if end < 0:
        end = len(body)
    if not name.isascii():  # could match undecodable bytes parse_headers replaced
        return parse_headers(body[:end]).get(name)
    key = name.encode()
    first = -1
    at = body.find(key, 0, end)
    while at >= 0:
        before = body[at - 1] if at else 10
        if before not in _NAME_BYTES:
            if before != 10 or not body.startswith(b": ", at + len(key)):
                return parse_headers(body[:end]).get(name)
            if first < 0:
                first = at
        at = body.find(key, at + 1, end)
    if first < 0:
        return None
    start = first + len(key) + 2
    stop = body.find(b"\n", start, end)
    value = body[start:end if stop < 0 else stop]
    return url_decode(value.decode("utf-8", "replace").strip())


class EventHeaders(Mapping[str, str]):
    """An event's decoded headers (first occurrence wins), looked up one at a time with
    :func:`header_value`; iterating parses the whole block once."""

    def __init__(self, body: bytes) -> None:
        self._body = body
        self._seen: dict[str, str | None] = {}
        self._all: dict[str, str] | None = None

    def __getitem__(self, name: str) -> str:
        if self._all is not None:
            return self._all[name]
        if name not in self._seen:
            self._seen[name] = header_value(self._body, name)
        value = self._seen[name]
        if value is None:
            raise KeyError(name)
        return value

    def _parsed(self) -> dict[str, str]:
        if self._all is None:
            self._all = parse_headers(self._body.split(b"\n\n", 1)[0])
        return self._all

    def __iter__(self) -> Iterator[str]:
        return iter(self._parsed())

    def __len__(self) -> int:
        return len(self._parsed())


class Reader:
    """Reads framed messages from a socket whose timeout bounds every wait."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        # Unread bytes are buf[pos:]: consuming a line moves pos instead of copying the
        # rest of the buffer (a recv brings up to 64 KB of events).
        self.buf = b""
        self.pos = 0

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionClosed("peer closed the connection")
        self.buf = self.buf[self.pos:] + chunk
        self.pos = 0

    def _line(self) -> bytes:
        while True:
            idx = self.buf.find(b"\n", self.pos)
            if idx >= 0:
                line = self.buf[self.pos:idx]
                self.pos = idx + 1
                return line
            if len(self.buf) - self.pos > MAX_LINE:
                raise ProtocolError("header line too long")
            self._fill()

    def _exact(self, size: int) -> bytes:
        while len(self.buf) - self.pos < size:
            self._fill()
        data = self.buf[self.pos:self.pos + size]
        self.pos += size
        return data

    def read(self) -> Message:
        """The next message. Raises socket.timeout, ConnectionClosed or ProtocolError."""
        headers: dict[str, str] = {}
        lines = 0
        while True:
            line = self._line().rstrip(b"\r")
            if not line:
                if headers:
                    break
                continue  # stray empty lines between messages are harmless
            lines += 1
            if lines > MAX_HEADER_LINES:
                raise ProtocolError("too many header lines")
            name, sep, value = line.decode("utf-8", "replace").partition(": ")
            if not sep or not name or " " in name:
                raise ProtocolError(f"not a header line: {line[:60]!r}")
            headers.setdefault(name, value)
        body = b""
        if "Content-Length" in headers:
            try:
                size = int(headers["Content-Length"])
            except ValueError:
                raise ProtocolError("bad Content-Length") from None
            if not 0 <= size <= MAX_BODY:
                raise ProtocolError(f"Content-Length {size} out of range")
            body = self._exact(size)
        return Message(headers, body)


def command(name: str, headers: dict[str, str] | None = None) -> bytes:
    """Frame one command: the command line, optional headers, the empty line."""
    lines = [name] + [f"{k}: {v}" for k, v in (headers or {}).items()]
    for line in lines:
        if "\n" in line or "\r" in line:
            raise ValueError("Event Socket command values must not contain line breaks")
    return ("\n".join(lines) + "\n\n").encode("utf-8")
