"""Races the database must win: parallel logins decided one at a time (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

from hotdesk.admin.inventory import add_user, default_tenant
from hotdesk.calls.service import CallContext, Outcome
from hotdesk.store.models import LoginAttempt, Session
from tests.conftest import make_device


def run_parallel(runtime, jobs: list[Callable[[], Outcome]]) -> list[Outcome]:
    results: list[Outcome | BaseException] = [None] * len(jobs)  # type: ignore[list-item]
    barrier = threading.Barrier(len(jobs))

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = jobs[i]()
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            results[i] = exc
        finally:
            runtime.db.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    assert not any(t.is_alive() for t in threads)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors[:3]
    return results  # type: ignore[return-value]


def active_sessions() -> list[Session]:
    return list(Session.select().where(Session.ended_at.is_null()))


def test_many_users_logging_in_on_one_phone_leave_exactly_one_session(runtime, desk):
    tenant = default_tenant()
    n = 40
    for i in range(n):
        add_user(runtime.db, tenant, str(200 + i), pin="1234", hotdesk=True)
    svc = runtime.service
    jobs = [lambda i=i: svc.login(desk.id, str(200 + i), "1234",
                                  CallContext("asterisk", f"c{i}", "8001")).outcome
            for i in range(n)]
    results = run_parallel(runtime, jobs)
    assert set(results) == {Outcome.LOGGED_IN}
    [session] = active_sessions()
    assert session.device_id == desk.id
    # Every other session was ended by a later login on the same phone.
    assert Session.select().where(Session.end_reason == "replaced").count() == n - 1


def test_one_user_on_twenty_phones_under_auto_logout_keeps_one_session(runtime, alice):
    devices = [make_device(runtime, mac=f"00:15:65:00:01:{i:02x}", extension=str(8100 + i))
               for i in range(20)]
    svc = runtime.service
    jobs = [lambda d=d: svc.login(d.id, "101", "1234",
                                  CallContext("asterisk", f"c{d.id}", d.idle_extension)).outcome
            for d in devices]
    results = run_parallel(runtime, jobs)
    assert set(results) == {Outcome.LOGGED_IN}
    assert len(active_sessions()) == 1
    assert Session.select().where(Session.end_reason == "moved").count() == 19


def test_parallel_wrong_pins_cannot_bypass_lockout(runtime, alice):
    devices = [make_device(runtime, mac=f"00:15:65:00:02:{i:02x}", extension=str(8200 + i))
               for i in range(12)]
    svc = runtime.service
    jobs = [lambda d=d: svc.login(d.id, "101", "0000",
                                  CallContext("asterisk", f"c{d.id}", d.idle_extension)).outcome
            for d in devices]
    results = Counter(run_parallel(runtime, jobs))
    # Exactly lockout_failures tries were checked; every later one was refused unchecked.
    failures = runtime.config.policy.lockout_failures
    assert results == {Outcome.WRONG_PIN: failures, Outcome.LOCKED: 12 - failures}
    assert LoginAttempt.select().where(LoginAttempt.result == "wrong_pin").count() == failures
    assert svc.login(devices[0].id, "101", "1234",
                     CallContext("asterisk", "late", "8200")).outcome is Outcome.LOCKED
