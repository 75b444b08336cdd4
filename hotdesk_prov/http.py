"""The small part of HTTP/1.1 a phone's config fetch needs: GET/HEAD, keep-alive,
pipelining, no request bodies. Pure functions over bytes, so they are tested alone."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from email.utils import formatdate
from urllib.parse import unquote

MAX_HEADER_BYTES = 8192
MAX_HEADERS = 64
REASONS = {200: "OK", 304: "Not Modified", 400: "Bad Request", 401: "Unauthorized",
           403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           408: "Request Timeout", 413: "Content Too Large", 431: "Request Header Fields Too Large",
           500: "Internal Server Error", 501: "Not Implemented",
           503: "Service Unavailable", 505: "HTTP Version Not Supported"}


class BadRequest(Exception):
    """The bytes are not a request we serve; ``status`` says which error to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass
class Request:
    method: str
    target: str  # as sent, e.g. /prov/<token>/<file>?x=1
    version: str  # HTTP/1.0 or HTTP/1.1
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection

    @property
    def path(self) -> str:
        """The decoded path: absolute-form targets lose their scheme and host, the query goes."""
        target = self.target
        if target.startswith(("http://", "https://")):
            slash = target.find("/", target.index("//") + 2)
            target = target[slash:] if slash >= 0 else "/"
        return unquote(target.split("?", 1)[0].split("#", 1)[0])


def parse_head(head: bytes) -> Request:
    """Parse the request line and headers (``head`` ends before the blank line)."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise BadRequest(400, "undecodable request") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise BadRequest(400, "malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise BadRequest(505 if version.startswith("HTTP/") else 400, "unsupported version")
    if len(lines) - 1 > MAX_HEADERS:
        raise BadRequest(431, "too many header fields")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or line[0] in " \t":
            raise BadRequest(400, "malformed header field")
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    if "transfer-encoding" in headers:
        raise BadRequest(501, "request bodies are not accepted")
    length = headers.get("content-length", "0").strip()
    if not length.isdigit():
        raise BadRequest(400, "bad Content-Length")
    if int(length):
        raise BadRequest(413, "request bodies are not accepted")
    return Request(method, target, version, headers)


class DateCache:
    """The Date header changes once a second; formatting it per request is wasted work."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def value(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = formatdate(now, usegmt=True).encode("ascii")
        return self._value


def response(status: int, body: bytes, content_type: str, headers: dict[str, str],
             date: bytes, keep_alive: bool, head_only: bool = False) -> bytes:
    """One serialized response. 304 and HEAD carry no body (HEAD keeps the length)."""
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}".encode("ascii"),
             b"Server: hotdesk", b"Date: " + date]
    if status != 304:
        lines.append(f"Content-Type: {content_type}".encode("latin-1"))
        lines.append(b"Content-Length: %d" % len(body))
    for name, value in headers.items():
        lines.append(f"{name}: {value}".encode("latin-1"))
    if not keep_alive:
        lines.append(b"Connection: close")
    lines.append(b"")
    lines.append(b"" if head_only or status == 304 else body)
    return b"\r\n".join(lines)
