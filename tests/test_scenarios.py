"""One scenario table, run over the wire against BOTH switch adapters.

Each row places real calls through a wire-level fake switch (FastAGI + AMI for Asterisk,
outbound + inbound Event Socket for FreeSWITCH) and expects the same outcome, the same
prompts, the same sessions and the same NOTIFYs from both: the adapters cannot drift.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import pytest

from hotdesk.admin.inventory import add_user, default_tenant
from hotdesk.store.models import Session, Tenant
from tests.conftest import make_device

SWITCHES = ["asterisk", "freeswitch"]
CHECK_SYNC = "check-sync;reboot=false"
A = "127.0.0.1:5071"  # desk 8001
B = "127.0.0.1:5072"  # desk 8002


@dataclass
class Call:
    feature: str
    endpoint: str
    extension: str = ""
    digits: tuple[str, ...] = ()
    source: str = A
    hangup_at: str | None = None
    # expected
    result: str | None = "ok"
    prompts: tuple[str, ...] | None = None


@dataclass
class Scenario:
    name: str
    calls: list[Call]
    # (phone idle extension, user extension) for every active session afterwards
    sessions: set[tuple[str, str]] = field(default_factory=set)
    notifies: list[tuple[str, str, str]] = field(default_factory=list)
    deny: bool = False


LOGIN_ALICE_A = Call("login", "8001", "101", ("1234",), A, result="ok",
                     prompts=("enter_pin", "login_ok"))

SCENARIOS = [
    Scenario("login ok", [LOGIN_ALICE_A], {("8001", "101")},
             [("8001", f"sip:8001@{A}", CHECK_SYNC)]),
    Scenario("wrong PIN x3", [Call("login", "8001", "101", ("1111", "2222", "3333"),
                                   result="wrong_pin",
                                   prompts=("enter_pin", "wrong_pin", "enter_pin", "wrong_pin",
                                            "enter_pin", "wrong_pin"))]),
    Scenario("lockout", [
        Call("login", "8001", "101", ("1111", "2222", "3333"), result="wrong_pin"),
        Call("login", "8001", "101", ("4444", "5555", "1234"), result="locked",
             prompts=("enter_pin", "wrong_pin", "enter_pin", "wrong_pin", "enter_pin",
                      "locked")),
        Call("login", "8001", "101", (), result="locked", prompts=("locked",)),
    ]),
    Scenario("user not enabled", [Call("login", "8001", "103", result="not_enabled",
                                       prompts=("not_enabled",))]),
    Scenario("unknown extension", [Call("login", "8001", "999", result="unknown_extension",
                                        prompts=("unknown_extension",))]),
    Scenario("not a hot-desk phone", [Call("login", "5555", "101", result="not_hotdesk_phone",
                                           prompts=("not_hotdesk_phone",))]),
    Scenario("roam over another user", [
        LOGIN_ALICE_A,
        Call("login", "101", "102", ("4321",), A, result="ok"),
    ], {("8001", "102")}, [("8001", f"sip:8001@{A}", CHECK_SYNC),
                           ("101", f"sip:101@{A}", CHECK_SYNC)]),
    Scenario("auto-logout elsewhere", [
        LOGIN_ALICE_A,
        Call("login", "8002", "101", ("1234",), B, result="ok"),
    ], {("8002", "101")}, [("8001", f"sip:8001@{A}", CHECK_SYNC),
                           ("101", f"sip:101@{A}", CHECK_SYNC),
                           ("8002", f"sip:8002@{B}", CHECK_SYNC)]),
    Scenario("deny policy", [
        LOGIN_ALICE_A,
        Call("login", "8002", "101", ("1234",), B, result="already_logged_in",
             prompts=("enter_pin", "already_logged_in")),
    ], {("8001", "101")}, [("8001", f"sip:8001@{A}", CHECK_SYNC)], deny=True),
    Scenario("logout", [
        LOGIN_ALICE_A,
        Call("logout", "101", source=A, result="logged_out", prompts=("logout_ok",)),
    ], set(), [("8001", f"sip:8001@{A}", CHECK_SYNC), ("101", f"sip:101@{A}", CHECK_SYNC)]),
    Scenario("logout when idle", [Call("logout", "8001", result="not_logged_in",
                                       prompts=("not_logged_in",))]),
    Scenario("hang-up mid-PIN", [
        Call("login", "8001", "101", hangup_at="collect", result=None),
        LOGIN_ALICE_A,
    ], {("8001", "101")}, [("8001", f"sip:8001@{A}", CHECK_SYNC)]),
    Scenario("switch disconnects mid-call", [
        Call("login", "8001", "101", hangup_at="disconnect", result=None),
        LOGIN_ALICE_A,
    ], {("8001", "101")}, [("8001", f"sip:8001@{A}", CHECK_SYNC)]),
]


@pytest.fixture(params=SWITCHES)
def driver(request, runtime, tmp_path):
    module = importlib.import_module(f"tests.drivers.{request.param}")
    with module.make_driver(runtime, tmp_path) as drv:
        yield drv


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario(driver, runtime, scenario: Scenario):
    tenant = default_tenant()
    add_user(runtime.db, tenant, "101", name="Alice", pin="1234", sip_password="a-secret",
             hotdesk=True)
    add_user(runtime.db, tenant, "102", name="Bob", pin="4321", sip_password="b-secret",
             hotdesk=True)
    add_user(runtime.db, tenant, "103", name="Carol", pin="1111", hotdesk=False)
    make_device(runtime, mac="00:15:65:00:00:01", extension="8001")
    make_device(runtime, mac="00:15:65:00:00:02", extension="8002")
    if scenario.deny:
        Tenant.update(multiple_login="deny").where(Tenant.id == tenant.id).execute()

    for call in scenario.calls:
        record = driver.call(call.feature, call.endpoint, call.extension, call.digits,
                             call.source, call.hangup_at)
        if call.hangup_at:
            assert record.result in (None, "hangup"), record
            assert not Session.select().where(Session.ended_at.is_null()).exists()
            continue
        assert record.result == call.result, (driver.name, call, record)
        if call.prompts is not None:
            assert tuple(record.prompts) == call.prompts, (driver.name, call, record)
        assert record.hung_up, record

    active = {(s.device.idle_extension, s.user.extension)
              for s in Session.select().where(Session.ended_at.is_null())}
    assert active == scenario.sessions
    got = driver.notifies(len(scenario.notifies)) if scenario.notifies else driver.notifies(0, 0.3)
    assert sorted(got) == sorted(scenario.notifies), driver.name
