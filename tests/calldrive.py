"""Drive a call script through the real call driver without a switch, as an adapter would."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hotdesk.calls.callflow import CallerHungUp, CallScript, Collect, ReadVoicemailPin
from hotdesk.calls.driver import CallDriver, CallMetrics, Finished
from hotdesk.calls.service import CallContext, HotdeskService, Outcome, SwitchPin
from tests.fakes import SWITCH_VOICEMAIL


def drive(service: HotdeskService, script: CallScript, ctx: CallContext,
          digits: Sequence[str] = (), hang_up_on_collect: bool = False,
          voicemail: Mapping[str, str] = SWITCH_VOICEMAIL,
          metrics: CallMetrics | None = None) -> tuple[list[object], Outcome]:
    """Returns (switch actions in order, outcome). ``digits``: what the caller keys at
    each Collect; ``voicemail``: the switch's PIN per mailbox (ReadVoicemailPin)."""
    driver = CallDriver(script, service, ctx, "login", metrics)
    actions: list[object] = []
    keyed = list(digits)
    step = driver.advance()
    while not isinstance(step, Finished):
        actions.append(step)
        reply: object = None
        error: BaseException | None = None
        if isinstance(step, Collect):
            if hang_up_on_collect:
                error = CallerHungUp()
            else:
                reply = keyed.pop(0) if keyed else ""
        elif isinstance(step, ReadVoicemailPin):
            reply = SwitchPin(voicemail.get(step.mailbox))
        step = driver.advance(reply, error)
    return actions, step.outcome
