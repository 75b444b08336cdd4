"""The parts wired together: render_dir files, heartbeats, call metrics, the web status.

Each test runs over the wire through the scenario drivers (a fake switch on 127.0.0.1),
for both switches, so the wiring is the same on both adapters.
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from hotdesk.calls.service import HotdeskService
from hotdesk.ops import health
from hotdesk.runtime import Runtime

SWITCHES = ["asterisk", "freeswitch"]
COMPONENT = {"asterisk": "ami", "freeswitch": "esl-inbound"}
A = "127.0.0.1:5071"


def make_driver(switch: str, runtime: Runtime, tmp_path: Path):  # type: ignore[no-untyped-def]
    return importlib.import_module(f"tests.drivers.{switch}").make_driver(runtime, tmp_path)


def with_config(runtime: Runtime, **sections: object) -> Runtime:
    cfg = dataclasses.replace(runtime.config, **sections)
    return Runtime(config=cfg, db=runtime.db, service=HotdeskService(runtime.db, cfg))


def wait_for(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


def beat(component: str) -> health.Beat | None:
    return next((b for b in health.read_all() if b.component == component), None)



def _sample(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return value or 0.0


@pytest.mark.parametrize("switch", SWITCHES)
def test_render_dir_holds_the_users_account_after_login(runtime, alice, desk, tmp_path, switch):
    render_dir = tmp_path / "tftp"
    rt = with_config(runtime, provisioning=dataclasses.replace(
        runtime.config.provisioning, render_dir=str(render_dir)))
    phone_file = render_dir / desk.prov_token / "0015651234ab.cfg"
    with make_driver(switch, rt, tmp_path) as drv:
        assert drv.call("login", "8001", "101", ("1234",), A).result == "ok"
        assert len(drv.notifies(1)) == 1
        assert wait_for(phone_file.exists)
        text = phone_file.read_text()
        assert "account.1.user_name = 101" in text
        assert "account.1.password = alice-secret" in text
        assert drv.call("logout", "101", source=A).result == "logged_out"
        assert len(drv.notifies(2)) == 2
        assert wait_for(lambda: "account.1.user_name = 8001" in phone_file.read_text())
        assert "alice-secret" not in phone_file.read_text()


@pytest.mark.parametrize("switch", SWITCHES)
def test_switch_connection_heartbeat_follows_the_connection(runtime, desk, tmp_path, switch):
    component = COMPONENT[switch]
    with make_driver(switch, runtime, tmp_path) as drv:
        assert wait_for(lambda: (b := beat(component)) is not None and b.state == "up")
        up = beat(component)
        assert up is not None and "127.0.0.1:" in up.detail
        assert _sample("hotdesk_switch_connection_up", component=component) == 1
        drv.stop_switch_control()
        assert wait_for(lambda: beat(component).state == "down")  # type: ignore[union-attr]
        down = beat(component)
        assert down is not None and down.since >= up.since
        assert _sample("hotdesk_switch_connection_up", component=component) == 0
        drv.start_switch_control()
        assert wait_for(lambda: beat(component).state == "up")  # type: ignore[union-attr]
    # Stopping the process says so: nobody reads a stopped adapter as connected.
    stopped = beat(component)
    assert stopped is not None and stopped.state == "down" and "stopped" in stopped.detail


@pytest.mark.parametrize("switch", SWITCHES)
def test_call_outcomes_feed_the_metrics(runtime, alice, desk, tmp_path, switch):
    assert runtime.config.policy.lockout_failures == 5
    def calls(result: str, feature: str = "login") -> float:
        return _sample("hotdesk_calls_total", switch=switch, feature=feature, result=result)

    before = {"ok": calls("ok"), "wrong": calls("wrong_pin"), "out": calls("logged_out", "logout"),
              "locked": calls("locked"),
              "pin": _sample("hotdesk_pin_failures_total"),
              "logins_ok": _sample("hotdesk_logins_total", result="ok"),
              "lockouts": _sample("hotdesk_lockouts_total")}
    with make_driver(switch, runtime, tmp_path) as drv:
        # Two wrong PINs then the right one: logged in, two PIN failures.
        assert drv.call("login", "8001", "101", ("1111", "2222", "1234"), A).result == "ok"
        assert drv.call("logout", "101", source=A).result == "logged_out"
        # Three wrong: a wrong_pin call, three failures. The next call's second wrong PIN is
        # the fifth failure since the success: locked out, and its third try is refused.
        assert drv.call("login", "8001", "101", ("1", "2", "3"), A).result == "wrong_pin"
        assert drv.call("login", "8001", "101", ("4", "5", "6"), A).result == "locked"
    assert calls("ok") - before["ok"] == 1
    assert calls("wrong_pin") - before["wrong"] == 1
    assert calls("logged_out", "logout") - before["out"] == 1
    assert _sample("hotdesk_logins_total", result="ok") - before["logins_ok"] == 1
    assert calls("locked") - before["locked"] == 1
    assert _sample("hotdesk_pin_failures_total") - before["pin"] == 2 + 3 + 2
    assert _sample("hotdesk_lockouts_total") - before["lockouts"] == 1


def test_web_switch_status_reads_the_heartbeats(runtime):
    from webadmin import integrations

    cfg = runtime.config
    status = integrations.switch_status(cfg, None)
    assert status["status"] == "unknown" and status["connections"] == []
    health.report("ami", "down", "127.0.0.1:5038: ConnectionRefusedError", node="pbx-a")
    status = integrations.switch_status(cfg, None)
    assert status["status"] == "down"
    assert "ConnectionRefusedError" in str(status["detail"]) and status["since"] is not None
    health.report("ami", "up", "127.0.0.1:5038: connected", node="pbx-b")
    status = integrations.switch_status(cfg, None)
    assert status["status"] == "connected" and "pbx-b" in str(status["detail"])
    assert {c["node"]: c["state"] for c in status["connections"]} == {"pbx-a": "down",
                                                                      "pbx-b": "up"}
    fs = dataclasses.replace(cfg, switch=dataclasses.replace(cfg.switch, type="freeswitch"))
    assert integrations.switch_status(fs, None)["status"] == "unknown"


def test_call_driver_counts_finished_calls_from_typed_results(runtime):
    from hotdesk.calls.callflow import Answer, CallerHungUp, Collect, Hangup
    from hotdesk.calls.driver import CallDriver, Finished
    from hotdesk.calls.service import CallContext, Outcome
    from hotdesk.ops import metrics

    def script():  # type: ignore[no-untyped-def]
        yield Answer()
        try:
            yield Collect("enter_pin", 8, 100)
        except CallerHungUp:
            return Outcome.HANGUP
        yield Hangup()
        return Outcome.WRONG_PIN

    def hangups() -> float:
        return _sample("hotdesk_calls_total", switch="test", feature="login", result="hangup")

    ctx = CallContext(switch="test", call_id="m1", endpoint="8001")
    before = hangups()
    abandoned = CallDriver(script(), runtime.service, ctx, "login", metrics.CALLS_SEEN)
    abandoned.advance()
    abandoned.abandon()  # the process stopped mid-call: no outcome to count
    assert hangups() == before
    hung = CallDriver(script(), runtime.service, ctx, "login", metrics.CALLS_SEEN)
    assert isinstance(hung.advance(), Answer)
    assert isinstance(hung.advance(), Collect)
    assert hung.advance(error=CallerHungUp()) == Finished(Outcome.HANGUP)
    assert hangups() == before + 1
