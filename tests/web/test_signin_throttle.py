"""The sign-in throttle against real ``hotdesk web`` processes: 40 parallel sign-ins test
at most 5 passwords, also when two processes share the database, and blocked tries
write a bounded number of audit rows."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import requests

from hotdesk.store.models import AuditEvent
from tests.web.browser import hotdesk_web
from tests.web.conftest import PASSWORD

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def prepared_session(base: str) -> tuple[requests.Session, str]:
    """A browser-like client holding a session cookie and its CSRF token."""
    client = requests.Session()
    page = client.get(base + "/signin", timeout=30)
    match = _CSRF.search(page.text)
    assert match, page.text[:500]
    return client, match.group(1)


def parallel_signins(bases: list[str], count: int, password: str) -> list[int]:
    """``count`` sign-ins spread over ``bases``, released at the same instant."""
    prepared = [(base, *prepared_session(base)) for base in (bases * count)[:count]]
    gate = threading.Barrier(count)

    def one(item: tuple[str, requests.Session, str]) -> int:
        base, client, token = item
        gate.wait(timeout=60)
        return client.post(base + "/signin", data={"username": "root", "password": password,
                                                   "csrf_token": token},
                           allow_redirects=False, timeout=120).status_code

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, prepared))


def passwords_tested() -> int:
    """Each password that was actually checked and wrong leaves one such row."""
    return AuditEvent.select().where(AuditEvent.action == "admin_signin_failed").count()


def test_40_parallel_signins_test_at_most_5_passwords(runtime, database_url, sysadmin,
                                                      tmp_path: Path):
    with hotdesk_web(database_url, tmp_path) as base:
        statuses = parallel_signins([base], 40, "wrong password!")
        assert passwords_tested() == statuses.count(401) == 5
        assert statuses.count(429) == 35
        # The budget is spent: even the right password is not checked now.
        client, token = prepared_session(base)
        right = client.post(base + "/signin", data={"username": "root", "password": PASSWORD,
                                                    "csrf_token": token},
                            allow_redirects=False, timeout=30)
        assert right.status_code == 429
    blocked = AuditEvent.select().where(AuditEvent.action == "admin_signin_blocked")
    # One row per client address a minute (two if the run straddles a minute).
    assert 1 <= blocked.count() <= 2


def test_two_web_processes_on_one_database_share_the_budget(runtime, database_url, sysadmin,
                                                            tmp_path: Path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with ExitStack() as stack:
        bases = [stack.enter_context(hotdesk_web(database_url, tmp_path / name))
                 for name in ("a", "b")]
        statuses = parallel_signins(bases, 40, "wrong password!")
    assert passwords_tested() == statuses.count(401) == 5
    assert statuses.count(429) == 35
