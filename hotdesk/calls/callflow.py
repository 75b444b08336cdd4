"""What the caller hears, once for both switches.

A call script is a generator that yields what it needs and receives the answers:
media actions (answer, play, collect digits, set a variable, hang up), one switch read
(the voicemail PIN, over the call's own channel) and the rules' decisions (which phone
is calling, may this user log in, log in, log out). The script does no I/O itself: the
switch adapters execute the media actions and the PIN read over their protocol, and
:mod:`hotdesk.calls.driver` answers the decisions from :mod:`hotdesk.calls.service`.
So the order of prompts, the number of PIN tries and the outcome of every branch are
written here and nowhere else.

If the caller hangs up, the adapter throws :class:`CallerHungUp` into the script; the
script then yields no further media and returns ``Outcome.HANGUP``. Every other branch
ends with SetVar(HOTDESK_RESULT), a prompt and a hang-up: the caller never hears silence.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Mapping
from dataclasses import dataclass

from hotdesk.calls.service import CallContext, Caller, LoginResult, Outcome, Phone, SwitchPin
from hotdesk.settings import PolicyConfig

log = logging.getLogger(__name__)

RESULT_VARIABLE = "HOTDESK_RESULT"


# -- media actions: executed by the switch adapter ------------------------------------

@dataclass(frozen=True)
class Answer:
    pass


@dataclass(frozen=True)
class Play:
    prompt: str


@dataclass(frozen=True)
class Collect:
    """Play ``prompt`` and read up to ``max_digits`` (``#`` ends early). Replies with the
    digits, or "" when the caller keyed nothing before ``timeout_ms``."""

    prompt: str
    max_digits: int
    timeout_ms: int


@dataclass(frozen=True)
class SetVar:
    name: str
    value: str


@dataclass(frozen=True)
class Hangup:
    pass


@dataclass(frozen=True)
class ReadVoicemailPin:
    """The user's voicemail PIN as the switch holds it right now (Asterisk:
    ``VM_INFO(mailbox@context,password)``; FreeSWITCH: the directory's ``vm-password``).
    Replies with a :class:`SwitchPin`; never logged."""

    mailbox: str
    context: str
    domain: str


MediaAction = Answer | Play | Collect | SetVar | Hangup
SwitchAction = MediaAction | ReadVoicemailPin


# -- decisions: answered by the driver from the rules ----------------------------------

@dataclass(frozen=True)
class IdentifyPhone:
    """Which hot-desking phone is calling. Replies with a :class:`Phone` or an Outcome."""

    ctx: CallContext


@dataclass(frozen=True)
class CheckCaller:
    """May ``extension`` log in on ``phone`` at all? Replies with a :class:`Caller`
    (who they are and where their PIN lives) or the refusal's Outcome."""

    phone: Phone
    extension: str


@dataclass(frozen=True)
class LogIn:
    """Check the PIN and make the phone the user's. Replies with a :class:`LoginResult`."""

    phone: Phone
    extension: str
    pin: str
    ctx: CallContext
    switch_pin: SwitchPin | None  # None: hotdesk's own PIN hash decides


@dataclass(frozen=True)
class LogOut:
    """Put the phone back to its idle profile. Replies with an Outcome."""

    phone: Phone
    ctx: CallContext


Decision = IdentifyPhone | CheckCaller | LogIn | LogOut
Action = SwitchAction | Decision
CallScript = Generator[Action, object, Outcome]


class CallerHungUp(Exception):
    """Thrown into a call script by the adapter when the caller has gone."""


# Which prompt ends each outcome.
FINAL_PROMPT: dict[Outcome, str] = {
    Outcome.LOGGED_IN: "login_ok",
    Outcome.LOGGED_OUT: "logout_ok",
    Outcome.WRONG_PIN: "wrong_pin",
    Outcome.LOCKED: "locked",
    Outcome.UNKNOWN_EXTENSION: "unknown_extension",
    Outcome.NOT_ENABLED: "not_enabled",
    Outcome.NOT_HOTDESK_PHONE: "not_hotdesk_phone",
    Outcome.NOT_LOGGED_IN: "not_logged_in",
    Outcome.AMBIGUOUS_DEVICE: "ambiguous_device",
    Outcome.ALREADY_LOGGED_IN: "already_logged_in",
    Outcome.NO_PIN: "no_pin",
    Outcome.ERROR: "error",
}


def _finish(outcome: Outcome, prompts: Mapping[str, str]) -> CallScript:
    yield SetVar(RESULT_VARIABLE, outcome.value)
    yield Play(prompts[FINAL_PROMPT[outcome]])
    yield Hangup()
    return outcome


def _guarded(steps: Generator[Action, object, Outcome], prompts: Mapping[str, str],
             ctx: CallContext, what: str) -> CallScript:
    """Answer, run ``steps``, end with the outcome's prompt. Any failure in a step
    (database locked or gone, switch trouble in a read) becomes the error prompt; the
    transaction has rolled back, so nothing is half-done."""
    try:
        yield Answer()
        try:
            outcome = yield from steps
        except CallerHungUp:
            raise
        except Exception:
            log.exception("call %s: %s failed", ctx.call_id, what)
            outcome = Outcome.ERROR
        return (yield from _finish(outcome, prompts))
    except CallerHungUp:
        log.info("call %s: caller hung up during %s", ctx.call_id, what)
        return Outcome.HANGUP


def login_call(ctx: CallContext, extension: str, prompts: Mapping[str, str],
               policy: PolicyConfig) -> CallScript:
    """``*70<extension>``: identify the phone, check the user, take up to N PINs, log in."""
    extension = extension.strip()
    return _guarded(_login_steps(ctx, extension, prompts, policy), prompts, ctx,
                    f"login for {extension!r}")


def _login_steps(ctx: CallContext, extension: str, prompts: Mapping[str, str],
                 policy: PolicyConfig) -> Generator[Action, object, Outcome]:
    if not extension.isdigit():
        return Outcome.UNKNOWN_EXTENSION
    phone = yield IdentifyPhone(ctx)
    if not isinstance(phone, Phone):
        return phone  # type: ignore[return-value]
    caller = yield CheckCaller(phone, extension)
    if not isinstance(caller, Caller):
        log.info("call %s: login %s on %s refused: %s", ctx.call_id, extension, phone.mac,
                 caller)
        return caller  # type: ignore[return-value]
    keyed_nothing = 0
    last_wrong = False
    for attempt in range(policy.pin_tries_per_call):
        if last_wrong:
            yield Play(prompts["wrong_pin"])
        pin = yield Collect(prompts["enter_pin"], policy.pin_max_digits, policy.pin_timeout_ms)
        pin = str(pin or "").strip().rstrip("#")
        if not pin:
            keyed_nothing += 1
            last_wrong = False
            continue
        switch_pin = None
        if caller.pin_on_switch:
            # Read at every try: a PIN changed on the switch (*97) works at once.
            switch_pin = yield ReadVoicemailPin(caller.mailbox, caller.voicemail_context,
                                                ctx.domain or caller.domain)
        result = yield LogIn(phone, extension, pin, ctx, switch_pin)
        assert isinstance(result, LoginResult)
        if result.outcome is not Outcome.WRONG_PIN:
            return result.outcome
        last_wrong = attempt + 1 < policy.pin_tries_per_call
    return Outcome.NO_PIN if keyed_nothing == policy.pin_tries_per_call else Outcome.WRONG_PIN


def logout_call(ctx: CallContext, prompts: Mapping[str, str]) -> CallScript:
    """``*71``: put the calling phone back to its idle extension."""
    return _guarded(_logout_steps(ctx), prompts, ctx, "logout")


def _logout_steps(ctx: CallContext) -> Generator[Action, object, Outcome]:
    phone = yield IdentifyPhone(ctx)
    if not isinstance(phone, Phone):
        return phone  # type: ignore[return-value]
    outcome = yield LogOut(phone, ctx)
    return outcome  # type: ignore[return-value]


def error_call(prompts: Mapping[str, str]) -> CallScript:
    """The caller still hears something when the request cannot be served at all."""
    yield Answer()
    return (yield from _finish(Outcome.ERROR, prompts))
