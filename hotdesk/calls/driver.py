"""The one driver of call scripts, used by both switch adapters.

A call script (:mod:`hotdesk.calls.callflow`) yields switch actions and decisions.
:meth:`CallDriver.advance` answers the decisions from the rules (database work, so a
threaded adapter calls it under its database gate) and stops at the next switch action,
which the adapter executes over its protocol and feeds back. An event loop uses the
same steps split in two (:meth:`CallDriver.resume` inline, :meth:`CallDriver.decide` in
a worker thread), so a call hops to a thread only for its two or three decisions.
How a hang-up, a refused command or a lost connection reaches the script, and what
is counted in the metrics, is decided here once for FastAGI and the Event Socket.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from hotdesk.calls.callflow import (
    CallerHungUp,
    CallScript,
    CheckCaller,
    Hangup,
    IdentifyPhone,
    LogIn,
    LogOut,
    SetVar,
    SwitchAction,
)
from hotdesk.calls.service import CallContext, HotdeskService, LoginResult, Outcome

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Finished:
    """The script has ended with ``outcome``."""

    outcome: Outcome


Step = SwitchAction | Finished
Decision = IdentifyPhone | CheckCaller | LogIn | LogOut


class CallMetrics(Protocol):
    def call_finished(self, switch: str, feature: str, outcome: Outcome, pin_failures: int,
                      lockout: bool) -> None: ...


class CallDriver:
    """Steps one call script; not thread-safe, one call at a time (like the call itself)."""

    def __init__(self, script: CallScript, service: HotdeskService, ctx: CallContext,
                 feature: str, metrics: CallMetrics | None = None) -> None:
        self.script = script
        self.service = service
        self.ctx = ctx
        self.feature = feature
        self.metrics = metrics
        self.caller_gone = False  # once set, every further switch action is refused
        self.pin_failures = 0
        self.lockout = False
        self.outcome: Outcome | None = None
        self._started = False

    def advance(self, reply: object = None, error: BaseException | None = None) -> Step:
        """Feed the reply to the last switch action (or ``error``: CallerHungUp when the
        caller has gone, any other exception when the switch refused the command) and
        run the script, deciding what it asks on the way, up to its next switch action.
        Blocking (the decisions touch the database)."""
        step = self.resume(reply, error)
        while isinstance(step, Decision):
            step = self.decided(*self.decide(step))
        return step

    def resume(self, reply: object = None,
               error: BaseException | None = None) -> Step | Decision:
        """Run the script, without touching the database, up to what it needs next: a
        switch action, a decision (answer it with :meth:`decide`, then :meth:`decided`)
        or its end. An event loop calls this inline and only ``decide`` in a thread."""
        if self.outcome is not None:
            return Finished(self.outcome)
        if isinstance(error, CallerHungUp):
            self.caller_gone = True
        return self._step(lambda: self._resume(reply, error))

    def decided(self, answer: object, error: BaseException | None) -> Step | Decision:
        """Give the script the answer to its decision (or the exception deciding it
        raised: the script plays the error prompt)."""
        return self._step(lambda: self._resume(None if error else answer, error))

    def decide(self, decision: Decision) -> tuple[object, BaseException | None]:
        """Answer one decision from the rules (blocking: database work)."""
        try:
            return self._decide(decision), None
        except Exception as exc:  # noqa: BLE001 - handed to the script, which says so
            return None, exc

    def _step(self, resume) -> Step | Decision:  # type: ignore[no-untyped-def]
        try:
            action = resume()
            while self.caller_gone and not isinstance(action, SetVar | Hangup | Decision):
                # Nothing more reaches the caller: tell the script until it ends.
                action = self._resume(None, CallerHungUp())
            return action  # type: ignore[no-any-return]
        except StopIteration as stop:
            outcome = stop.value if isinstance(stop.value, Outcome) else Outcome.ERROR
            return self._finish(outcome)

    def _resume(self, reply: object, error: BaseException | None):  # type: ignore[no-untyped-def]
        if not self._started:
            self._started = True
            return next(self.script)
        if error is not None:
            return self.script.throw(error)
        return self.script.send(reply)

    def _decide(self, decision: Decision) -> object:
        service = self.service
        if isinstance(decision, IdentifyPhone):
            return service.identify_phone(decision.ctx)
        if isinstance(decision, CheckCaller):
            return service.check_caller(decision.phone, decision.extension)
        if isinstance(decision, LogIn):
            result: LoginResult = service.login(decision.phone.id, decision.extension,
                                                decision.pin, decision.ctx, decision.switch_pin)
            self.pin_failures += result.pin_failed
            self.lockout = self.lockout or result.locked_out
            return result
        return service.logout(decision.phone.id, reason="logout",
                              actor=f"caller:{decision.ctx.endpoint}",
                              call_id=decision.ctx.call_id, source=decision.ctx.source)

    def _finish(self, outcome: Outcome) -> Finished:
        self.outcome = outcome
        if self.metrics is not None:
            self.metrics.call_finished(self.ctx.switch, self.feature, outcome,
                                       self.pin_failures, self.lockout)
        return Finished(outcome)

    def abandon(self) -> None:
        """The process is stopping mid-call: close the script, count nothing."""
        self.script.close()

