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


def test_users_swapping_phones_in_parallel_end_consistent(runtime):
    """Many users logging in on many phones at once, each user on two phones in turn
    and each phone wanted by two users: every phone ends with at most one session,
    every user with at most one (auto_logout), and no login fails or deadlocks."""
    tenant = default_tenant()
    users = [str(400 + i) for i in range(10)]
    for ext in users:
        add_user(runtime.db, tenant, ext, pin="1234", hotdesk=True)
    phones = [make_device(runtime, mac=f"00:15:65:00:04:{i:02x}", extension=str(8400 + i))
              for i in range(10)]
    svc = runtime.service

    def job(user: str, phone) -> Callable[[], Outcome]:  # type: ignore[no-untyped-def]
        return lambda: svc.login(phone.id, user, "1234", CallContext(
            "asterisk", f"s{user}-{phone.id}", phone.idle_extension)).outcome

    jobs = [job(u, phones[i]) for i, u in enumerate(users)]
    jobs += [job(u, phones[(i + 1) % len(phones)]) for i, u in enumerate(users)]
    results = run_parallel(runtime, jobs)
    assert set(results) == {Outcome.LOGGED_IN}
    active = active_sessions()
    assert len({s.device_id for s in active}) == len(active)
    assert len({s.user_id for s in active}) == len(active)


def test_two_users_on_two_phones_do_not_wait_for_each_other(runtime, alice, bob, desk, desk2):
    """Different user, different phone: both logins hold their own locks at once."""
    svc = runtime.service
    jobs = [lambda: svc.login(desk.id, "101", "1234",
                              CallContext("asterisk", "a", "8001")).outcome,
            lambda: svc.login(desk2.id, "102", "4321",
                              CallContext("asterisk", "b", "8002")).outcome]
    assert run_parallel(runtime, jobs) == [Outcome.LOGGED_IN, Outcome.LOGGED_IN]
    assert {(s.user_id, s.device_id) for s in active_sessions()} == {
        (alice.id, desk.id), (bob.id, desk2.id)}
