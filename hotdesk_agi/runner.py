"""Run a call script (hotdesk.calls.callflow) over one FastAGI session.

The script decides everything; this module only turns its actions into AGI commands
and the replies back into values. The script touches the database, so every step of
the generator runs in a worker thread: the event loop keeps serving other calls.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from hotdesk.calls.callflow import (
    RESULT_VARIABLE,
    Action,
    Answer,
    CallerHungUp,
    CallScript,
    Collect,
    Hangup,
    Play,
    SetVar,
)
from hotdesk.calls.service import Outcome
from hotdesk_agi.protocol import AgiProtocolError, LineReader, Reply, clean, quote

log = logging.getLogger(__name__)

DEAD_CHANNEL = 511


class SwitchGone(Exception):
    """The FastAGI connection is unusable (closed, reset, stalled, garbage)."""


@dataclass
class AgiSession:
    """One FastAGI connection: send a command, get its reply, remember a hang-up."""

    reader: LineReader
    writer: asyncio.StreamWriter
    command_timeout: float
    commands: list[str] = field(default_factory=list)
    hung_up: bool = False

    async def command(self, line: str, extra_timeout: float = 0.0) -> Reply:
        self.commands.append(line)
        try:
            self.writer.write(line.encode() + b"\n")
            await asyncio.wait_for(self.writer.drain(), self.command_timeout)
            reply = await self.reader.reply(self.command_timeout + extra_timeout)
        except (TimeoutError, AgiProtocolError, ConnectionError, OSError) as exc:
            raise SwitchGone(f"{line.split(' ', 1)[0]}: {exc}") from None
        if reply.code == DEAD_CHANNEL or self.reader.hangup_seen:
            self.hung_up = True
        if reply.code == 520:
            log.error("Asterisk rejected %r: %s", line, reply.lines[0])
        elif reply.code >= 500 and reply.code != DEAD_CHANNEL:
            log.error("Asterisk rejected %r: %d %s", line, reply.code, reply.extra)
        return reply


StepRunner = Callable[[Callable[[], Any]], "asyncio.Future[Any]"]


def thread_runner(executor: Executor | None) -> StepRunner:
    """Run blocking steps in ``executor`` (None = the loop's default) with the caller's
    contextvars, so log lines from the database code carry the call id."""
    def run(fn: Callable[[], Any]) -> asyncio.Future[Any]:
        ctx = contextvars.copy_context()
        return asyncio.get_running_loop().run_in_executor(executor, ctx.run, fn)
    return run


class AgiCommandFailed(Exception):
    """Asterisk refused a command the script needs (e.g. 510/520): the script ends with
    its error branch instead of waiting for digits that will never come."""


def _advance(script: CallScript, value: Any, exc: BaseException | None) -> tuple[bool, Any]:
    """One generator step, in a worker thread. StopIteration cannot cross a Future, so
    the end of the script is returned as (True, outcome)."""
    try:
        if exc is not None:
            return False, script.throw(exc)
        return False, script.send(value)
    except StopIteration as stop:
        return True, stop.value


async def run_script(session: AgiSession, script: CallScript, step: StepRunner) -> Outcome:
    """Drive ``script`` to its end; returns its outcome. Never raises for a caller or
    switch problem: a vanished caller is thrown into the script as CallerHungUp."""
    gone = False
    value: Any = None
    exc: BaseException | None = None
    while True:
        done, result = await step(functools.partial(_advance, script, value, exc))
        if done:
            outcome = result if isinstance(result, Outcome) else Outcome.ERROR
            break
        action: Action = result
        value, exc = None, None
        if gone or (session.hung_up and not isinstance(action, SetVar | Hangup)):
            # Nothing more reaches the caller: keep telling the script until it ends.
            exc = CallerHungUp()
            continue
        try:
            value, hung = await _execute(session, action)
        except SwitchGone as err:
            log.warning("FastAGI connection lost: %s", err)
            gone = session.hung_up = True
            exc = CallerHungUp()
            continue
        except AgiCommandFailed as err:
            exc = err
            continue
        if isinstance(action, Hangup):
            outcome = Outcome.HANGUP if session.hung_up else Outcome.ERROR
            # The script's own outcome is in the generator's return; read it.
            done, result = await step(lambda: _advance(script, None, None))
            outcome = result if done and isinstance(result, Outcome) else outcome
            break
        if hung:
            exc = CallerHungUp()
    if outcome is Outcome.HANGUP and not gone:
        # The channel is dead but the session is open: the dialplan can still read it.
        try:
            await session.command(f"SET VARIABLE {RESULT_VARIABLE} {Outcome.HANGUP.value}")
        except SwitchGone as err:
            log.info("could not set %s after hang-up: %s", RESULT_VARIABLE, err)
    script.close()  # already finished: nothing runs, no thread needed
    return outcome


async def _execute(session: AgiSession, action: Action) -> tuple[str | None, bool]:
    """Send one action; returns (value for the script, caller hung up)."""
    if isinstance(action, Answer):
        await session.command("ANSWER")
        return None, session.hung_up
    if isinstance(action, Collect):
        # Prompt and digit collection in ONE command: DTMF keyed while no command
        # reads is lost, so a separate STREAM FILE + WAIT FOR DIGIT would drop digits.
        reply = await session.command(
            f"GET DATA {quote(clean(action.prompt))} {action.timeout_ms} {action.max_digits}",
            extra_timeout=action.timeout_ms / 1000 * (action.max_digits + 1))
        if reply.ok and reply.result == "-1":
            session.hung_up = True
        if session.hung_up:
            return None, True
        if not reply.ok:
            raise AgiCommandFailed(f"GET DATA refused: {reply.lines[0] if reply.lines else ''}")
        return reply.result, False
    if isinstance(action, Play):
        reply = await session.command(f"STREAM FILE {quote(clean(action.prompt))} \"\"")
        if reply.ok and reply.result == "-1" and not session.hung_up:
            # -1 is also "file not found": a real hang-up shows up as HANGUP/511 next.
            log.warning("playback of %r failed (missing sound file?)", action.prompt)
        return None, session.hung_up
    if isinstance(action, SetVar):
        await session.command(f"SET VARIABLE {clean(action.name)} {quote(clean(action.value))}")
        return None, session.hung_up
    if isinstance(action, Hangup):
        return None, session.hung_up
    raise TypeError(f"unknown call-script action {action!r}")
