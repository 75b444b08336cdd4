"""FastAGI wire format: the environment block, commands and replies (bare LF everywhere).

Asterisk writes ``HANGUP\\n`` asynchronously whenever the channel goes away and again
when the session ends; it is not a reply and may arrive before or after one, so the
reader skips it wherever it appears and only remembers that it was seen. Every read
is bounded in time and size: a peer that sends nothing, or sends garbage, costs one
task for at most the timeout and never more than ``MAX_LINE`` bytes of memory.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

MAX_LINE = 8192  # bytes per line; longer lines are garbage, not FastAGI
MAX_ENV_LINES = 256  # Asterisk sends ~25 plus the arguments
HANGUP_LINE = "HANGUP"


class AgiProtocolError(Exception):
    """The peer sent something that is not FastAGI (or nothing in time)."""


class AgiClosed(AgiProtocolError):
    """The peer closed or reset the connection."""


@dataclass
class Reply:
    """One command reply. ``result`` is the text after ``result=``; ``data`` the text in
    parentheses (``(timeout)``, a variable's value); ``extra`` the rest (``endpos=N``)."""

    code: int
    result: str = ""
    data: str | None = None
    extra: str = ""
    lines: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.code == 200

    @property
    def timed_out(self) -> bool:
        return self.data == "timeout"


_REPLY = re.compile(r"^([0-9]{3})(?: result=(\S*)(?: \((.*)\))?(?: ?(.*))?)?")


def parse_reply_line(line: str) -> Reply:
    """``200 result=1 (8001)`` / ``200 result= (timeout)`` / ``510 Invalid …``."""
    m = _REPLY.match(line)
    if m is None:
        raise AgiProtocolError(f"not an AGI reply: {line[:80]!r}")
    code, result, data, extra = m.groups()
    if result is None:
        return Reply(code=int(code), extra=line[4:], lines=[line])
    # "200 result= (timeout)": the regex reads "(timeout)" as data with an empty result.
    return Reply(code=int(code), result=result, data=data, extra=(extra or "").strip(),
                 lines=[line])


class LineReader:
    """Reads LF-terminated lines from a stream with a size cap and a timeout per line."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.hangup_seen = False

    async def line(self, timeout: float) -> str:
        try:
            # asyncio.timeout, not wait_for: wait_for wraps every read in a new Task,
            # a cost paid on each of the ~30 lines of a call.
            async with asyncio.timeout(timeout):
                return await self.line_unbounded()
        except TimeoutError:
            raise AgiProtocolError(f"no data within {timeout:g} s") from None

    async def line_unbounded(self) -> str:
        """The next line, with no time limit of its own: the caller sets one."""
        try:
            raw = await self.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            raise AgiClosed("connection closed by peer"
                            + (f" mid-line ({len(exc.partial)} bytes)" if exc.partial else "")
                            ) from None
        except asyncio.LimitOverrunError:
            raise AgiProtocolError(f"line longer than {MAX_LINE} bytes") from None
        except (ConnectionError, OSError) as exc:
            raise AgiClosed(f"connection error: {exc}") from None
        return raw[:-1].decode("utf-8", "replace").rstrip("\r")

    async def reply(self, timeout: float) -> Reply:
        """The next reply, skipping async HANGUP lines; reads a whole ``520-`` block.
        All of it within ``timeout`` (one timer per reply, not one per line)."""
        try:
            async with asyncio.timeout(timeout):
                return await self._reply()
        except TimeoutError:
            raise AgiProtocolError(f"no reply within {timeout:g} s") from None

    async def _reply(self) -> Reply:
        while True:
            line = await self.line_unbounded()
            if line == HANGUP_LINE:
                self.hangup_seen = True
                continue
            if line.startswith("520-"):
                lines = [line]
                while True:
                    more = await self.line_unbounded()
                    if more == HANGUP_LINE:
                        self.hangup_seen = True
                        continue
                    lines.append(more)
                    if more.startswith("520 "):
                        return Reply(code=520, extra="\n".join(lines[1:-1]), lines=lines)
                    if len(lines) > MAX_ENV_LINES:
                        raise AgiProtocolError("520 usage reply without an end line")
            return parse_reply_line(line)


async def read_env(reader: LineReader, timeout: float) -> dict[str, str]:
    """The ``agi_*: value`` block up to the empty line, all of it within ``timeout``
    (one deadline for the block, not one timer per line)."""
    env: dict[str, str] = {}
    try:
        async with asyncio.timeout(timeout):
            for _ in range(MAX_ENV_LINES):
                line = await reader.line_unbounded()
                if line == "":
                    if not env:
                        raise AgiProtocolError("empty environment block")
                    return env
                key, sep, value = line.partition(":")
                if not sep or not key.startswith("agi_"):
                    raise AgiProtocolError(f"not an AGI environment line: {line[:80]!r}")
                env[key] = value[1:] if value.startswith(" ") else value
    except TimeoutError:
        raise AgiProtocolError(f"environment block not complete within {timeout:g} s") \
            from None
    raise AgiProtocolError(f"environment block longer than {MAX_ENV_LINES} lines")


def script_name(env: dict[str, str]) -> str:
    """Route key: ``login?ext=101`` and ``/login`` both route to ``login``."""
    name = env.get("agi_network_script", "")
    return name.split("?", 1)[0].strip("/")


def args_of(env: dict[str, str]) -> list[str]:
    """``agi_arg_1..N`` in order (Asterisk numbers them from 1, without gaps)."""
    out: list[str] = []
    for n in range(1, MAX_ENV_LINES):
        value = env.get(f"agi_arg_{n}")
        if value is None:
            break
        out.append(value)
    return out


_NEEDS_QUOTES = re.compile(r'[\s"\\]')


def quote(value: str) -> str:
    """An AGI command argument: double-quoted when it is empty or has spaces/quotes."""
    if value and not _NEEDS_QUOTES.search(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def clean(value: str) -> str:
    """A value safe inside one command line (no line breaks can be injected)."""
    return value.replace("\r", " ").replace("\n", " ")
