"""Fault suite, both switches, over the wire: what breaks mid-call, and what must survive it.

- the switch's control connection (AMI / inbound Event Socket) goes away and comes back;
- the call connection (FastAGI / outbound Event Socket) drops mid-call (switch crash);
- the database is locked (SQLite) or its backend is killed (PostgreSQL) during a login.

Every test runs on SQLite and on PostgreSQL (``scripts/test`` runs the suite twice).
"""

from __future__ import annotations

import importlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hotdesk.runtime import Runtime
from hotdesk.store.models import AuditEvent, LoginAttempt, OutboxNotify, Session
from tests.conftest import make_device

SWITCHES = ["asterisk", "freeswitch"]
A = "127.0.0.1:5071"
B = "127.0.0.1:5072"


def make_driver(switch: str, runtime: Runtime, tmp_path: Path):  # type: ignore[no-untyped-def]
    return importlib.import_module(f"tests.drivers.{switch}").make_driver(runtime, tmp_path)


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def counts() -> dict[str, int]:
    """Every table a login writes: a half-done login shows up here."""
    return {"sessions": Session.select().count(), "outbox": OutboxNotify.select().count(),
            "attempts": LoginAttempt.select().count(), "audit": AuditEvent.select().count()}


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.exc_info]


# -- the control connection: AMI / inbound Event Socket ---------------------------------


@pytest.mark.parametrize("switch", SWITCHES)
def test_control_connection_lost_mid_call_then_back(runtime, alice, bob, desk, tmp_path,
                                                    switch, caplog):
    """Calls do not need AMI/ESL: they complete; their NOTIFYs wait and go out once."""
    caplog.set_level(logging.INFO)
    desk2 = make_device(runtime, mac="00:15:65:00:00:02", extension="8002")
    with make_driver(switch, runtime, tmp_path) as drv:
        assert wait_for(drv.control_connected)
        results: list[str | None] = []
        # The control link goes away while the first call is in flight.
        call = threading.Thread(target=lambda: results.append(
            drv.call("login", "8001", "101", ("1234",), A).result))
        call.start()
        drv.stop_switch_control()
        call.join(30)
        assert not call.is_alive()
        assert wait_for(lambda: not drv.control_connected())
        rec = drv.call("login", "8002", "102", ("4321",), B)
        assert results == ["ok"] and rec.result == "ok"
        assert rec.prompts == ["enter_pin", "login_ok"]
        assert Session.select().where(Session.ended_at.is_null()).count() == 2
        # Queued meanwhile, nothing lost and no attempt used up by the outage.
        pending = list(OutboxNotify.select().where(OutboxNotify.status == "pending"))
        assert {r.device_id for r in pending} >= {desk2.id}
        assert all(r.attempts == 0 for r in pending)

        drv.start_switch_control()
        assert wait_for(drv.control_connected)
        got = drv.notifies(2, timeout=10)
        assert wait_for(lambda: OutboxNotify.select().where(
            OutboxNotify.status == "sent").count() == 2)
        # Exactly once each: a few more drain rounds send nothing again.
        time.sleep(5 * runtime.config.notify.poll_seconds if switch == "freeswitch" else 1.0)
        got = drv.notifies(2, timeout=0)
        assert sorted(user for user, _, _ in got) == ["8001", "8002"]
        assert OutboxNotify.select().where(OutboxNotify.status != "sent").count() == 0
    assert tracebacks(caplog) == []


@pytest.mark.parametrize("switch", SWITCHES)
def test_control_connection_flaps_during_calls(runtime, alice, desk, tmp_path, switch, caplog):
    """Several outages in a row: every call ends with its prompt, every NOTIFY goes once."""
    with make_driver(switch, runtime, tmp_path) as drv:
        assert wait_for(drv.control_connected)  # each outage ends an established connection
        for n in range(3):
            drv.stop_switch_control()
            feature = ("login", "8001", "101", ("1234",)) if n % 2 == 0 else \
                ("logout", "101", "", ())
            rec = drv.call(*feature, source=A)
            assert rec.result == ("ok" if n % 2 == 0 else "logged_out")
            drv.start_switch_control()
            assert len(drv.notifies(n + 1, timeout=10)) >= n + 1
            # The next outage starts once the switch's "accepted" is recorded: a NOTIFY
            # whose reply is lost with the connection is sent again (at least once).
            assert wait_for(lambda sent=n + 1: OutboxNotify.select().where(
                OutboxNotify.status == "sent").count() == sent)
        got = drv.notifies(3, timeout=0)
        assert [user for user, _, _ in got] == ["8001", "101", "8001"], got
    assert tracebacks(caplog) == []


# -- the call connection: FastAGI / outbound Event Socket -------------------------------


@pytest.mark.parametrize("switch", SWITCHES)
def test_call_connection_drops_mid_call(runtime, alice, desk, tmp_path, switch):
    """The switch crashes during the PIN prompt: no half session, the next call is served."""
    with make_driver(switch, runtime, tmp_path) as drv:
        before = counts()
        rec = drv.call("login", "8001", "101", ("1234",), A, hangup_at="disconnect")
        assert rec.result is None  # nothing to set: the channel is gone
        after = counts()
        assert after["sessions"] == before["sessions"] and after["outbox"] == before["outbox"]
        assert after["attempts"] == before["attempts"]
        rec = drv.call("login", "8001", "101", ("1234",), A)
        assert rec.result == "ok" and rec.prompts == ["enter_pin", "login_ok"]
        assert Session.select().where(Session.ended_at.is_null()).count() == 1
        assert len(drv.notifies(1)) == 1


# -- the database ------------------------------------------------------------------------


@contextmanager
def sqlite_locked(url: str) -> Iterator[None]:
    """Another connection holds BEGIN EXCLUSIVE (longer than busy_timeout) meanwhile."""
    other = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None, timeout=10)
    other.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


@contextmanager
def postgres_backend_killed_in_login(url: str) -> Iterator[None]:
    """Hold the tenant row so the login's transaction waits on it, then terminate the
    backend of that login (as a server restart would) and let go of the row."""
    import psycopg2

    blocker = psycopg2.connect(url)
    blocker.autocommit = False
    cur = blocker.cursor()
    cur.execute("SELECT id FROM tenant FOR UPDATE")
    killed: list[int] = []
    stop = threading.Event()

    def kill() -> None:
        admin = psycopg2.connect(url)
        admin.autocommit = True
        try:
            with admin.cursor() as c:
                while not stop.is_set() and not killed:
                    c.execute("SELECT pid FROM pg_stat_activity WHERE datname = "
                              "current_database() AND wait_event_type = 'Lock' AND pid <> %s",
                              (blocker.get_backend_pid(),))
                    for (pid,) in c.fetchall():
                        c.execute("SELECT pg_terminate_backend(%s)", (pid,))
                        killed.append(pid)
                    stop.wait(0.02)
        finally:
            if killed:
                blocker.rollback()
            admin.close()

    killer = threading.Thread(target=kill, daemon=True)
    killer.start()
    try:
        yield
    finally:
        stop.set()
        killer.join(10)
        blocker.rollback()
        blocker.close()
    assert killed, "the login never waited on the tenant row"


@pytest.mark.parametrize("switch", SWITCHES)
def test_database_fails_during_login(runtime, alice, desk, tmp_path, switch, database_url):
    """Locked (SQLite) or backend killed (PostgreSQL) mid-login: the caller hears the
    error prompt, nothing is half-written, and the next login works."""
    fault = sqlite_locked if database_url.startswith("sqlite") else \
        postgres_backend_killed_in_login
    with make_driver(switch, runtime, tmp_path) as drv:
        # Warm up: the adapter's database threads hold open connections from now on.
        assert drv.call("logout", "8001", source=A).result == "not_logged_in"
        before = counts()
        with fault(database_url):
            rec = drv.call("login", "8001", "101", ("1234",), A)
        assert rec.result == "error"
        assert rec.prompts[-1] == "error"
        assert counts() == before
        # The lock is gone / the connection was replaced: logins work again.
        for _ in range(runtime.config.agi.db_threads + 1):  # every DB thread recovers
            rec = drv.call("login", "8001", "101", ("1234",), A)
            assert rec.result == "ok", rec
        active = list(Session.select().where(Session.ended_at.is_null()))
        assert len(active) == 1 and active[0].user_id == alice.id
        assert drv.notifies(1)
