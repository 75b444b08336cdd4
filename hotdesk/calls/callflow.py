"""What the caller hears, once for both switches.

A call script is a generator that yields media actions (answer, play, collect digits,
set a variable, hang up) and receives their results. The switch adapters only run
those actions over their protocol: FastAGI for Asterisk, the Event Socket for
FreeSWITCH. So the order of prompts, the number of PIN tries and the outcome of every
branch are written here and nowhere else.

If the caller hangs up, the adapter throws :class:`CallerHungUp` into the script; the
script then yields no further media and returns ``Outcome.HANGUP``. Every other branch
ends with SetVar(HOTDESK_RESULT), a prompt and a hang-up: the caller never hears silence.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Mapping
from dataclasses import dataclass

from hotdesk.calls.service import CallContext, HotdeskService, Outcome, PinVerifier
from hotdesk.settings import PolicyConfig
from hotdesk.store.models import Device, User

log = logging.getLogger(__name__)

RESULT_VARIABLE = "HOTDESK_RESULT"


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


Action = Answer | Play | Collect | SetVar | Hangup
CallScript = Generator[Action, str | None, Outcome]


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


def login_call(service: HotdeskService, ctx: CallContext, extension: str,
               prompts: Mapping[str, str], policy: PolicyConfig,
               pin_verifier: PinVerifier | None = None) -> CallScript:
    """``*70<extension>``: identify the phone, check the user, take up to N PINs, log in."""
    try:
        yield Answer()
        try:
            outcome = yield from _login_steps(service, ctx, extension.strip(), prompts, policy,
                                              pin_verifier)
        except CallerHungUp:
            raise
        except Exception:
            # Database locked or gone, switch trouble in a look-up: the caller hears an
            # error prompt and the transaction has rolled back, so nothing is half-done.
            log.exception("call %s: login for %r failed", ctx.call_id, extension)
            outcome = Outcome.ERROR
        return (yield from _finish(outcome, prompts))
    except CallerHungUp:
        log.info("call %s: caller hung up during login for %r", ctx.call_id, extension)
        return Outcome.HANGUP


def _login_steps(service: HotdeskService, ctx: CallContext, extension: str,
                 prompts: Mapping[str, str], policy: PolicyConfig,
                 pin_verifier: PinVerifier | None) -> Generator[Action, str | None, Outcome]:
    if not extension.isdigit():
        return Outcome.UNKNOWN_EXTENSION
    device = service.identify_device(ctx)
    if not isinstance(device, Device):
        return device
    user = service.find_user(device, extension)
    if not isinstance(user, User):
        log.info("call %s: login %s on %s refused: %s", ctx.call_id, extension, device.mac,
                 user.value)
        return user
    keyed_nothing = 0
    last_wrong = False
    for attempt in range(policy.pin_tries_per_call):
        if last_wrong:
            yield Play(prompts["wrong_pin"])
        pin = yield Collect(prompts["enter_pin"], policy.pin_max_digits, policy.pin_timeout_ms)
        pin = (pin or "").strip().rstrip("#")
        if not pin:
            keyed_nothing += 1
            last_wrong = False
            continue
        outcome = service.login(device.id, extension, pin, ctx, pin_verifier)
        if outcome is not Outcome.WRONG_PIN:
            return outcome
        last_wrong = attempt + 1 < policy.pin_tries_per_call
    return Outcome.NO_PIN if keyed_nothing == policy.pin_tries_per_call else Outcome.WRONG_PIN


def logout_call(service: HotdeskService, ctx: CallContext,
                prompts: Mapping[str, str]) -> CallScript:
    """``*71``: put the calling phone back to its idle extension."""
    try:
        yield Answer()
        try:
            device = service.identify_device(ctx)
            if isinstance(device, Device):
                outcome = service.logout(device.id, reason="logout",
                                         actor=f"caller:{ctx.endpoint}", call_id=ctx.call_id)
            else:
                outcome = device
        except Exception:
            log.exception("call %s: logout failed", ctx.call_id)
            outcome = Outcome.ERROR
        return (yield from _finish(outcome, prompts))
    except CallerHungUp:
        log.info("call %s: caller hung up during logout", ctx.call_id)
        return Outcome.HANGUP
