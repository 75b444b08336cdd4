"""The call scripts driven directly: what a caller hears in each branch (no switch needed)."""

from __future__ import annotations

import pytest

from hotdesk.calls.callflow import (
    Answer,
    Collect,
    Hangup,
    Play,
    ReadVoicemailPin,
    SetVar,
    login_call,
    logout_call,
)
from hotdesk.calls.service import CallContext, Outcome
from hotdesk.store.models import Session, Tenant
from tests import calldrive
from tests.fakes import SWITCH_VOICEMAIL

CTX = CallContext(switch="asterisk", call_id="t1", endpoint="8001", source="192.0.2.5:5060")


def drive(runtime, script, digits=(), hang_up_on_collect=False, voicemail=SWITCH_VOICEMAIL):
    return calldrive.drive(runtime.service, script, CTX, digits, hang_up_on_collect, voicemail)


def prompts(runtime):
    return runtime.config.prompts("asterisk")


def test_login_ok_plays_pin_prompt_then_confirmation(runtime, alice, desk):
    p = prompts(runtime)
    actions, outcome = drive(runtime, login_call(CTX, "101", p, runtime.config.policy),
                             ["1234"])
    assert outcome is Outcome.LOGGED_IN
    assert actions == [Answer(), Collect(p["enter_pin"], 8, 5000),
                       ReadVoicemailPin("101", "default", "default"),
                       SetVar("HOTDESK_RESULT", "ok"), Play(p["login_ok"]), Hangup()]


def test_three_wrong_pins_end_the_call_with_wrong_pin(runtime, alice, desk):
    p = prompts(runtime)
    actions, outcome = drive(runtime, login_call(CTX, "101", p, runtime.config.policy),
                             ["1111", "2222", "3333", "1234"])
    assert outcome is Outcome.WRONG_PIN
    assert [a for a in actions if isinstance(a, Collect)].__len__() == 3
    assert actions[-3:] == [SetVar("HOTDESK_RESULT", "wrong_pin"), Play(p["wrong_pin"]), Hangup()]
    assert Session.select().count() == 0


def test_no_digits_at_all_is_no_pin(runtime, alice, desk):
    actions, outcome = drive(runtime, login_call(CTX, "101", prompts(runtime),
                                        runtime.config.policy), ["", "", ""])
    assert outcome is Outcome.NO_PIN


def test_hang_up_mid_pin_leaves_no_session_and_no_more_media(runtime, alice, desk):
    actions, outcome = drive(runtime, login_call(CTX, "101", prompts(runtime),
                                        runtime.config.policy), hang_up_on_collect=True)
    assert outcome is Outcome.HANGUP
    assert isinstance(actions[-1], Collect)
    assert Session.select().count() == 0


@pytest.mark.parametrize("extension,outcome", [("999", Outcome.UNKNOWN_EXTENSION),
                                               ("abc", Outcome.UNKNOWN_EXTENSION)])
def test_refusals_still_play_a_prompt(runtime, alice, desk, extension, outcome):
    p = prompts(runtime)
    actions, got = drive(runtime, login_call(CTX, extension, p, runtime.config.policy))
    assert got is outcome
    assert actions[-2:] == [Play(p["unknown_extension"]), Hangup()]


def test_database_failure_plays_error_prompt(runtime, alice, desk, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("database is locked")

    monkeypatch.setattr(runtime.service, "login", broken)
    p = prompts(runtime)
    actions, outcome = drive(runtime, login_call(CTX, "101", p, runtime.config.policy),
                             ["1234"])
    assert outcome is Outcome.ERROR
    assert actions[-3:] == [SetVar("HOTDESK_RESULT", "error"), Play(p["error"]), Hangup()]


@pytest.mark.parametrize("switch", ["asterisk", "freeswitch"])
def test_idle_logout_prompt_is_not_the_logged_off_one(config, switch):
    prompts = config.prompts(switch)
    assert prompts["not_logged_in"] != prompts["logout_ok"]


def test_logout_when_idle_says_not_logged_in(runtime, desk):
    p = prompts(runtime)
    actions, outcome = drive(runtime, logout_call(CTX, p))
    assert outcome is Outcome.NOT_LOGGED_IN
    assert Play(p["not_logged_in"]) in actions


def test_switch_pin_is_read_at_every_try_over_the_call(runtime, alice, desk):
    p = prompts(runtime)
    actions, outcome = drive(runtime, login_call(CTX, "101", p, runtime.config.policy),
                             ["1234", "9999"], voicemail={"101": "9999"})
    assert outcome is Outcome.LOGGED_IN
    reads = [a for a in actions if isinstance(a, ReadVoicemailPin)]
    assert reads == [ReadVoicemailPin("101", "default", "default")] * 2


def test_hotdesk_pins_read_nothing_from_the_switch(runtime, alice, desk):
    Tenant.update(pin_source="hotdesk").execute()
    p = prompts(runtime)
    actions, outcome = drive(runtime, login_call(CTX, "101", p, runtime.config.policy),
                             ["1234"], voicemail={})
    assert outcome is Outcome.LOGGED_IN
    assert not [a for a in actions if isinstance(a, ReadVoicemailPin)]


def test_user_without_voicemail_on_the_switch_hears_wrong_pin(runtime, alice, desk):
    p = prompts(runtime)
    actions, outcome = drive(runtime, login_call(CTX, "101", p, runtime.config.policy),
                             ["1234"] * 3, voicemail={})
    assert outcome is Outcome.WRONG_PIN
    assert actions[-2:] == [Play(p["wrong_pin"]), Hangup()]
