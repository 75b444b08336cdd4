"""Real processes: kill -9 in the middle of a login/logout, and two drainers on one outbox.

Every wait here is a bounded poll; a stuck child is killed in ``finally``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hotdesk.store.models import Device, LoginAttempt, OutboxNotify, Session

from .conftest import REPO


def child_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTDESK_")}
    env.update(HOTDESK_DATABASE_URL=database_url, HOTDESK_LOG_LEVEL="INFO",
               HOTDESK_NOTIFY_CALL_GRACE_SECONDS="0", PYTHONPATH=str(REPO), **extra)
    return env


def wait_for(predicate, proc: subprocess.Popen | None = None,  # type: ignore[no-untyped-def]
             timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            out = proc.stderr.read().decode() if proc.stderr else ""
            pytest.fail(f"child exited with {proc.returncode} before {what}:\n{out}")
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def crash_at(mode: str, database_url: str, tmp_path: Path) -> str:
    """Start the crash script, wait for its pause point, SIGKILL it; returns the marker."""
    marker = tmp_path / f"{mode}.marker"
    proc = subprocess.Popen([sys.executable, "-m", "tests.procs.crash_midway", mode,
                             str(marker)], cwd=REPO, env=child_env(database_url),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(marker.exists, proc, what=f"{mode} pause point")
        time.sleep(0.1)  # the marker is written before the pause; let the write finish
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        return marker.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()


def restart_drain(database_url: str, tmp_path: Path) -> list[str]:
    """A fresh ``hotdesk worker --once`` with a recording sender; returns what it sent."""
    log = tmp_path / "sent.log"
    env = child_env(database_url, HOTDESK_TEST_SEND_LOG=str(log))
    result = subprocess.run([sys.executable, "-m", "hotdesk_cli", "worker", "--once",
                             "--sender", "tests.procs.recording_sender:factory"],
                            cwd=REPO, env=env, capture_output=True, timeout=90)
    assert result.returncode == 0, result.stderr.decode()
    return [line for line in log.read_text().splitlines() if line.startswith("sent ")]


def active_sessions(device: Device) -> list[Session]:
    return list(Session.select().where((Session.device == device) & Session.ended_at.is_null()))


def test_kill9_inside_login_transaction_leaves_nothing_half_done(runtime, database_url,
                                                                  tmp_path, alice, desk):
    assert crash_at("login-in-tx", database_url, tmp_path) == "in-transaction"
    runtime.db.close()  # read afresh, as a restarted process would
    assert Session.select().count() == 0
    assert OutboxNotify.select().count() == 0
    assert LoginAttempt.select().count() == 0
    assert Device.get_by_id(desk.id).config_version == 1
    # The restarted service works at once: the dead process's lock is gone.
    from hotdesk.calls.service import CallContext, Outcome
    ctx = CallContext(switch="asterisk", call_id="retry", endpoint="8001")
    assert runtime.service.login(desk.id, "101", "1234", ctx).outcome is Outcome.LOGGED_IN
    assert [line.split()[3] for line in restart_drain(database_url, tmp_path)] == ["8001"]


def test_kill9_after_login_commit_keeps_session_and_restarted_drain_sends(
        runtime, database_url, tmp_path, alice, desk):
    assert crash_at("login-committed", database_url, tmp_path) == "committed"
    runtime.db.close()
    [session] = active_sessions(desk)
    assert session.user_id == alice.id
    row = OutboxNotify.get(OutboxNotify.device == desk)
    assert (row.status, row.endpoint, row.config_version) == ("pending", "8001", 2)
    sent = restart_drain(database_url, tmp_path)
    assert [line.split()[2:] for line in sent] == [[str(row.id), "8001"]]
    assert OutboxNotify.get_by_id(row.id).status == "sent"
    # The phone ends with alice's profile: desired version is the one the NOTIFY announced.
    from hotdesk.provisioning.render import make_environment, render_device
    device = Device.get_by_id(desk.id)
    assert device.config_version == row.config_version
    rendered = "".join(render_device(make_environment(runtime.config), device,
                                     runtime.config).values())
    assert "101" in rendered


def test_kill9_inside_logout_transaction_loses_no_logout(runtime, database_url, tmp_path,
                                                         alice, desk):
    from hotdesk.calls.service import CallContext, Outcome
    ctx = CallContext(switch="asterisk", call_id="pre", endpoint="8001")
    runtime.service.login(desk.id, "101", "1234", ctx)
    OutboxNotify.update(status="sent").execute()
    runtime.db.close()
    assert crash_at("logout-in-tx", database_url, tmp_path) == "in-transaction"
    # Rolled back: still logged in, no NOTIFY; the caller heard no confirmation and
    # a retried *71 logs out properly.
    assert len(active_sessions(desk)) == 1
    assert OutboxNotify.select().where(OutboxNotify.status == "pending").count() == 0
    assert runtime.service.logout(desk.id) is Outcome.LOGGED_OUT
    assert [line.split()[3] for line in restart_drain(database_url, tmp_path)] == ["101"]


def test_kill9_after_logout_commit_still_sends_idle_notify(runtime, database_url, tmp_path,
                                                           alice, desk):
    from hotdesk.calls.service import CallContext
    ctx = CallContext(switch="asterisk", call_id="pre", endpoint="8001")
    runtime.service.login(desk.id, "101", "1234", ctx)
    OutboxNotify.update(status="sent").execute()
    runtime.db.close()
    assert crash_at("logout-committed", database_url, tmp_path) == "committed"
    assert active_sessions(desk) == []
    sent = restart_drain(database_url, tmp_path)
    # The phone is registered as 101 until it fetches the idle profile.
    assert [line.split()[3] for line in sent] == ["101"]
    assert Device.get_by_id(desk.id).config_version == 3


class TwoDrainers:
    """Two ``hotdesk worker --drain-only`` processes with the recording sender."""

    def __init__(self, database_url: str, tmp_path: Path, factory: str = "factory",
                 **env: str) -> None:
        self.log = tmp_path / "sent.log"
        env = child_env(database_url, HOTDESK_TEST_SEND_LOG=str(self.log), **env)
        cmd = [sys.executable, "-m", "hotdesk_cli", "worker", "--drain-only",
               "--sender", f"tests.procs.recording_sender:{factory}"]
        self.procs = [subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE) for _ in range(2)]

    def lines(self, prefix: str) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [ln.split() for ln in self.log.read_text().splitlines()
                if ln.startswith(prefix)]

    def wait_ready(self) -> None:
        for proc in self.procs:
            wait_for(lambda: len(self.lines("ready")) == 2, proc, what="both drainers ready")

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            assert proc.wait(timeout=30) == 0, proc.stderr.read().decode()

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
            if proc.stderr:
                proc.stderr.close()


@pytest.mark.parametrize("factory", ["factory", "pipelined_factory"])
def test_two_worker_processes_drain_500_rows_exactly_once(runtime, database_url, tmp_path,
                                                          factory):
    """One row at a time, and whole batches in flight at once (as the AMI sender does)."""
    drainers = TwoDrainers(database_url, tmp_path, factory, HOTDESK_TEST_SEND_DELAY="0.001",
                           HOTDESK_NOTIFY_POLL_SECONDS="0.05")
    try:
        drainers.wait_ready()
        rows = [{"endpoint": f"e{i}", "domain": "default"} for i in range(500)]
        with runtime.db.atomic():
            for start in range(0, 500, 100):
                OutboxNotify.insert_many(rows[start:start + 100]).execute()
        runtime.db.close()
        wait_for(lambda: len(drainers.lines("sent")) >= 500
                 and OutboxNotify.select().where(OutboxNotify.status == "pending").count() == 0,
                 what="all 500 rows sent")
        drainers.stop()
    finally:
        drainers.kill()
    sent = drainers.lines("sent")
    ids = [int(fields[2]) for fields in sent]
    assert len(ids) == 500 and len(set(ids)) == 500  # every row exactly once
    assert set(ids) == {r.id for r in OutboxNotify.select(OutboxNotify.id)}
    by_pid = {fields[1] for fields in sent}
    assert len(by_pid) == 2, "both processes should have drained part of the outbox"
    assert OutboxNotify.select().where(OutboxNotify.status != "sent").count() == 0


def test_two_drain_processes_with_sends_slower_than_the_lease_send_each_row_once(
        runtime, database_url, tmp_path):
    """A batch takes ~4 s against a 1 s lease: the second drainer takes over the rows
    whose lease ran out, and the first must then leave them alone. Every row is sent
    exactly once, every refused try is counted exactly once."""
    drainers = TwoDrainers(database_url, tmp_path, HOTDESK_TEST_SEND_DELAY="0.3",
                           HOTDESK_TEST_SEND_FAIL="refuse", HOTDESK_NOTIFY_POLL_SECONDS="0.05",
                           HOTDESK_NOTIFY_LEASE_SECONDS="1", HOTDESK_NOTIFY_MAX_ATTEMPTS="3",
                           HOTDESK_NOTIFY_BACKOFF_SECONDS="0")
    try:
        drainers.wait_ready()
        rows = ([{"endpoint": f"e{i}", "domain": "default"} for i in range(10)]
                + [{"endpoint": f"refuse{i}", "domain": "default"} for i in range(2)])
        OutboxNotify.insert_many(rows).execute()
        runtime.db.close()
        wait_for(lambda: OutboxNotify.select().where(OutboxNotify.status == "pending")
                 .count() == 0, what="every row sent or given up")
        time.sleep(1.5)  # a late duplicate would show up within one more send
        drainers.stop()
    finally:
        drainers.kill()
    sent = [int(fields[2]) for fields in drainers.lines("sent")]
    refused = [int(fields[2]) for fields in drainers.lines("fail")]
    assert len({fields[1] for fields in drainers.lines("sent") + drainers.lines("fail")}) == 2, \
        "the second drainer should have taken over rows whose lease ran out"
    for row in OutboxNotify.select():
        if row.endpoint.startswith("refuse"):
            assert (row.status, sent.count(row.id), refused.count(row.id), row.attempts) \
                == ("failed", 0, 3, 3), row.endpoint
        else:
            assert (row.status, sent.count(row.id), refused.count(row.id), row.attempts) \
                == ("sent", 1, 0, 1), row.endpoint
