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


class Reader:
    """Reads framed messages from a socket whose timeout bounds every wait."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionClosed("peer closed the connection")
        self.buf += chunk

    def _line(self) -> bytes:
        while True:
            idx = self.buf.find(b"\n")
            if idx >= 0:
                line, self.buf = self.buf[:idx], self.buf[idx + 1:]
                return line
            if len(self.buf) > MAX_LINE:
                raise ProtocolError("header line too long")
            self._fill()

    def _exact(self, size: int) -> bytes:
        while len(self.buf) < size:
            self._fill()
        data, self.buf = self.buf[:size], self.buf[size:]
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
