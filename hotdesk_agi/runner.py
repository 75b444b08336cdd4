"""Run a call (hotdesk.calls.driver) over one FastAGI session.

The call script decides everything; this module only turns its switch actions into
AGI commands and the replies back into values. The script's decisions touch the
database, so each runs in a worker thread: the event loop keeps serving other calls.
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
    Answer,
    CallerHungUp,
    Collect,
    Hangup,
    Play,
    ReadVoicemailPin,
    SetVar,
    SwitchAction,
)
from hotdesk.calls.driver import CallDriver, Decision, Finished, Step
from hotdesk.calls.service import Outcome, SwitchPin
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
            if self.writer.transport.get_write_buffer_size():
                # Only bytes the socket did not take can make drain() wait: bound that.
                # (With an empty buffer it returns at once, or raises for a lost
                # connection, so no timer is set for the usual case.)
                async with asyncio.timeout(self.command_timeout):
                    await self.writer.drain()
            else:
                await self.writer.drain()
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


async def run_script(session: AgiSession, driver: CallDriver, step: StepRunner,
                     on_step: Callable[[Step], None] = lambda step: None) -> Outcome:
    """Drive a call to its end through ``driver``; returns the outcome. The script runs
    on the event loop; only its decisions (database work) go to ``step``'s threads.
    Never raises for a caller or switch problem: a vanished caller reaches the script
    as CallerHungUp."""
    gone = False
    reply: Any = None
    error: BaseException | None = None
    while True:
        result = driver.resume(reply, error)
        if isinstance(result, Decision):
            result = await step(functools.partial(_decide_all, driver, result))
        on_step(result)
        if isinstance(result, Finished):
            outcome = result.outcome
            break
        reply, error = None, None
        try:
            reply, hung = await _execute(session, result)
        except SwitchGone as err:
            log.warning("FastAGI connection lost: %s", err)
            gone = session.hung_up = True
            error = CallerHungUp()
            continue
        except AgiCommandFailed as err:
            error = err
            continue
        if hung and not isinstance(result, Hangup):
            error = CallerHungUp()
    if outcome is Outcome.HANGUP and not gone:
        # The channel is dead but the session is open: the dialplan can still read it.
        try:
            await session.command(f"SET VARIABLE {RESULT_VARIABLE} {Outcome.HANGUP.value}")
        except SwitchGone as err:
            log.info("could not set %s after hang-up: %s", RESULT_VARIABLE, err)
    return outcome


def _decide_all(driver: CallDriver, decision: Decision) -> Step:
    """Answer ``decision`` and every decision the script asks right after it (identify
    the phone, then check the caller) in one trip to a database thread, up to the next
    switch action: each trip costs two thread hand-overs, more than a decision's SQL."""
    result: Step | Decision = decision
    while isinstance(result, Decision):
        result = driver.decided(*driver.decide(result))
    return result


async def _execute(session: AgiSession,
                   action: SwitchAction) -> tuple[str | SwitchPin | None, bool]:
    """Send one action; returns (value for the script, caller hung up)."""
    if isinstance(action, ReadVoicemailPin):
        return await _read_voicemail_pin(session, action)
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


async def _read_voicemail_pin(session: AgiSession,
                              action: ReadVoicemailPin) -> tuple[SwitchPin | None, bool]:
    """``VM_INFO(box@context,password)`` over the call's own channel: works for
    voicemail.conf, realtime and ODBC storage, needs no AMI privilege. The reply
    carries the PIN, so the command is never logged with its reply."""
    box = f"{clean(action.mailbox)}@{clean(action.context)}"
    reply = await session.command(f"GET FULL VARIABLE ${{VM_INFO({box},password)}}")
    if session.hung_up:
        return None, True
    if not reply.ok:
        raise AgiCommandFailed(f"reading the voicemail PIN of {box} was refused")
    # 200 result=1 (1234); an unknown mailbox reads as an empty value or result=0.
    value = reply.data if reply.result == "1" else ""
    return SwitchPin(value or None), False
