"""FreeSWITCH's event socket for the emergency feature, answering with real bytes.

``db`` API replies are the bodies of ``freeswitch_captures/esl-directory-reads.s2c.bin``
(``+OK`` without a newline for insert/delete, ``-ERR no reply`` + LF for a missing
select; ``!err!`` for an insert without a value, from ``esl-pipelined-batch.s2c.bin``);
the call events are ``esl-emergency-call.s2c.bin``'s, the caller renamed.
mod_db is a dict, so tests can check what FreeSWITCH would hold.
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes.freeswitch import FakeInboundServer, split_messages

CAPTURES = Path(__file__).parent / "freeswitch_captures"


def _messages(name: str) -> list[tuple[list[bytes], bytes]]:
    return split_messages((CAPTURES / name).read_bytes())


READS = [body for _, body in _messages("esl-directory-reads.s2c.bin")]
# The db section of the capture, in the order it was sent: insert, select, exists,
# delete, select (missing), exists (missing).
DB_OK, DB_SELECT_MISSING = READS[-14], READS[-10]
assert DB_OK == b"+OK" and DB_SELECT_MISSING == b"-ERR no reply\n"
# Eight commands written at once (esl-pipelined-batch.txt): mod_db answers an insert
# without a value "!err!" (no newline) in its place.
PIPELINED = [body for _, body in _messages("esl-pipelined-batch.s2c.bin")]
DB_NO_VALUE = PIPELINED[4]
assert DB_NO_VALUE == b"!err!"
CALL_EVENTS = [body for lines, body in _messages("esl-emergency-call.s2c.bin")
               if b"Content-Type: text/event-plain" in lines]


class FakeEmergencyFreeSWITCH(FakeInboundServer):
    """FakeInboundServer plus mod_db and the events of one real 911 call."""

    def __init__(self, password: str = "ClueCon") -> None:
        super().__init__(password)
        self.db: dict[str, str] = {}  # "realm/key" -> value
        self.db_commands: list[str] = []

    def _api(self, cmd: str) -> bytes:
        if not cmd.startswith("db "):
            return super()._api(cmd)
        self.db_commands.append(cmd)
        verb, _, rest = cmd[3:].partition("/")
        parts = rest.split("/", 2)
        if verb == "insert" and len(parts) == 3:
            self.db[f"{parts[0]}/{parts[1]}"] = parts[2]
            return DB_OK
        if verb == "insert" and len(parts) == 2:
            return DB_NO_VALUE
        if verb == "delete" and len(parts) == 2:
            self.db.pop(f"{parts[0]}/{parts[1]}", None)
            return DB_OK
        if verb == "select" and len(parts) == 2:
            value = self.db.get(f"{parts[0]}/{parts[1]}")
            return value.encode() if value is not None else DB_SELECT_MISSING
        raise AssertionError(f"the emergency fake does not know {cmd!r}")

    def emit_call(self, user: str, number: str = "911") -> None:
        """Every captured event of the call, the caller 101 renamed to ``user``."""
        for body in CALL_EVENTS:
            body = (body.replace(b"101%40127.0.0.1", f"{user}%40127.0.0.1".encode())
                    .replace(b"variable_user_name: 101\n", f"variable_user_name: {user}\n".encode())
                    .replace(b"Caller-Username: 101\n", f"Caller-Username: {user}\n".encode())
                    .replace(b"Caller-Destination-Number: 911\n",
                             f"Caller-Destination-Number: {number}\n".encode()))
            self.push_event(body, body.split(b"\n", 1)[0].split(b": ", 1)[1].decode())
