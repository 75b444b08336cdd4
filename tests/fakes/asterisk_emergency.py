"""An AMI server for the emergency feature, replaying real Asterisk 22 bytes.

Every reply is a message of ``asterisk_captures/ami-astdb.s2c.bin`` (DBPut, DBDel,
DBDelTree and their errors) with only the ActionID swapped for the client's; the call
events are ``ami-emergency-call.s2c.bin``'s, in order, with the calling channel renamed
to the endpoint asked for. AstDB is a dict, so tests can check what Asterisk would hold.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

CAPTURES = Path(__file__).parent / "asterisk_captures"


def messages(name: str) -> list[bytes]:
    """The ``\\r\\n\\r\\n``-terminated messages of a capture (the banner line first)."""
    data = (CAPTURES / name).read_bytes()
    banner, _, rest = data.partition(b"\r\n")
    return [banner + b"\r\n"] + [m + b"\r\n\r\n" for m in rest.split(b"\r\n\r\n") if m]


def _by_message(replies: list[bytes], text: bytes) -> bytes:
    return next(r for r in replies if b"Message: " + text + b"\r\n" in r)


ASTDB = messages("ami-astdb.s2c.bin")
BANNER = ASTDB[0]
LOGIN_OK = _by_message(ASTDB, b"Authentication accepted")
PUT_OK = _by_message(ASTDB, b"Updated database successfully")
DELTREE_OK = _by_message(ASTDB, b"Key tree deleted successfully")
NOT_FOUND = [r for r in ASTDB if b"Message: Database entry not found" in r
             and b"dbdeltree" in r][0]
GOODBYE = ASTDB[-1]
CALL = messages("ami-emergency-call.s2c.bin")
# The events of the call (FullyBooted and the phone's login included), as Asterisk sent them.
CALL_EVENTS = [m for m in CALL if m.startswith(b"Event: ")]


def with_action_id(template: bytes, action_id: str) -> bytes:
    return re.sub(rb"ActionID: [^\r]*", b"ActionID: " + action_id.encode(), template, count=1)


class FakeEmergencyAMI:
    """AstDB actions and the events of one emergency call, over real AMI bytes."""

    def __init__(self, username: str = "hotdesk", secret: str = "labsecret") -> None:
        self.username = username
        self.secret = secret
        self.astdb: dict[str, str] = {}  # "family/key" -> value
        self.received: list[bytes] = []  # every action block, as sent
        self.listeners: list[asyncio.StreamWriter] = []
        self._server: asyncio.AbstractServer | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def emit_call(self, endpoint: str, number: str = "911") -> None:
        """Every event of the captured call, the phone's channel renamed to ``endpoint``."""
        for event in CALL_EVENTS:
            event = event.replace(b"PJSIP/101-", f"PJSIP/{endpoint}-".encode())
            event = event.replace(b"Exten: 911\r\n", f"Exten: {number}\r\n".encode())
            for writer in self.listeners:
                writer.write(event)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        writer.write(BANNER)
        try:
            while True:
                block = await reader.readuntil(b"\r\n\r\n")
                self.received.append(block)
                headers = dict(line.split(": ", 1) for line in
                               block.decode().split("\r\n") if ": " in line)
                reply = self._action(headers, writer)
                writer.write(with_action_id(reply, headers.get("ActionID", "")))
                if reply is GOODBYE:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            if writer in self.listeners:
                self.listeners.remove(writer)

    def _action(self, h: dict[str, str], writer: asyncio.StreamWriter) -> bytes:
        action = h.get("Action", "")
        if action == "Login":
            assert (h.get("Username"), h.get("Secret")) == (self.username, self.secret)
            if h.get("Events", "on") != "off":
                self.listeners.append(writer)
            return LOGIN_OK
        if action == "DBPut":
            self.astdb[f"{h['Family']}/{h['Key']}"] = h.get("Val", "")
            return PUT_OK
        if action == "DBDelTree":
            keys = [k for k in self.astdb if k.startswith(h["Family"] + "/")]
            for key in keys:
                del self.astdb[key]
            return DELTREE_OK if keys else NOT_FOUND
        if action == "Logoff":
            return GOODBYE
        raise AssertionError(f"the emergency fake does not know {action!r}")
