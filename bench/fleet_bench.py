"""Admin lists of a large fleet over real HTTP: 10,000 phones, 20,000 users, 3,000 active
sessions and 200,000 audit rows seeded by bulk inserts into a fresh database, then the
real ``hotdesk web`` started as a subprocess, signed in through its form (pages) and with
a bearer token (API), and each list timed: first page, a middle page, a sorted page, a
filtered page. Target: p95 < 200 ms for every one.

    .venv/bin/python bench/fleet_bench.py                       # SQLite
    .venv/bin/python bench/fleet_bench.py --postgres auto       # a throw-away PostgreSQL
    .venv/bin/python bench/fleet_bench.py --postgres postgresql://u@host/db
    .venv/bin/python bench/fleet_bench.py --phones 1000 --requests 5   # quick

With ``--postgres auto`` the server is started like bench/outbox_bench.py does
(HOTDESK_BENCH_DATABASE_URL wins when set). A DSN given is emptied first.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.fleet_seed import Fleet, seed  # noqa: E402
from bench.outbox_bench import postgres  # noqa: E402
from hotdesk.admin import admins  # noqa: E402
from hotdesk.emergency.models import EMERGENCY_MODELS  # noqa: E402
from hotdesk.store.db import open_database, upgrade  # noqa: E402
from hotdesk.store.models import ALL_MODELS  # noqa: E402
from tests.web.browser import hotdesk_web  # noqa: E402

TARGET_MS = 200.0
PASSWORD = "fleet bench password"
PER_PAGE = 50
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def fresh_database(url: str):  # type: ignore[no-untyped-def]
    db = open_database(url)
    if not url.startswith("sqlite"):
        db.drop_tables(list(reversed(ALL_MODELS + EMERGENCY_MODELS)), safe=True, cascade=True)
    upgrade(db)
    return db


def signed_in(base: str, username: str) -> requests.Session:
    """A browser-like session signed in through the real form (CSRF token included)."""
    web = requests.Session()
    token = _CSRF.search(web.get(base + "/signin").text)
    assert token, "no CSRF token on /signin"
    answer = web.post(base + "/signin", data={"username": username, "password": PASSWORD,
                                              "csrf_token": token.group(1)},
                      allow_redirects=False)
    if answer.status_code != 302:
        raise RuntimeError(f"sign-in failed: {answer.status_code}")
    return web


def targets(fleet: Fleet) -> list[tuple[str, str]]:
    """(label, path) of every page timed: the dashboard, then each list's first, middle,
    sorted and filtered page."""
    def middle(rows: int) -> int:
        return max(math.ceil(rows / PER_PAGE) // 2, 1)
    audit_user = 100000 + 123
    lists = {
        "phones": ("/phones", fleet.phones, "-name", "q=floor%2012"),
        "users": ("/users", fleet.users, "-name", "q=Rossi"),
        "sessions": ("/sessions", fleet.active_sessions, "user", "q=Desk%2000"),
        "audit": ("/audit", fleet.audit, "action", f"user={audit_user}"),
    }
    out = [("dashboard", "/")]  # counts every phone's state
    for prefix in ("", "/api/v1"):
        for name, (path, rows, sort, query) in lists.items():
            label = f"{'API ' if prefix else ''}{name}"
            full = prefix + path
            out += [(f"{label}: first page", f"{full}?per_page={PER_PAGE}"),
                    (f"{label}: middle page", f"{full}?per_page={PER_PAGE}&page={middle(rows)}"),
                    (f"{label}: sorted ({sort})", f"{full}?per_page={PER_PAGE}&sort={sort}"),
                    (f"{label}: filtered ({query})", f"{full}?per_page={PER_PAGE}&{query}")]
    return out


def time_one(client: requests.Session, url: str, headers: dict[str, str],
             n: int) -> tuple[list[float], int, int]:
    """n timed GETs after one warm-up: (seconds each, last status, body bytes)."""
    client.get(url, headers=headers)
    times, status, size = [], 0, 0
    for _ in range(n):
        began = time.perf_counter()
        answer = client.get(url, headers=headers)
        times.append(time.perf_counter() - began)
        status, size = answer.status_code, len(answer.content)
    return times, status, size


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


def load_average() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def run(url: str, name: str, fleet: Fleet, requests_per_target: int) -> bool:
    workdir = Path(tempfile.mkdtemp(prefix="hotdesk-fleet-bench."))
    try:
        db = fresh_database(url)
        began = time.monotonic()
        counts = seed(db, fleet)
        admin = admins.create_admin(db, "root", PASSWORD)
        token = admins.create_token(db, admin, "bench")
        if url.startswith("postgres"):
            db.execute_sql("VACUUM ANALYZE")  # what autovacuum does after a bulk load
        db.close()
        print(f"{name}: seeded {counts} in {time.monotonic() - began:.1f} s")
        ok = True
        with hotdesk_web(url, workdir) as base:
            web = signed_in(base, "root")
            api = requests.Session()
            bearer = {"Authorization": f"Bearer {token}"}
            print(f"{'list':<44} {'status':>6} {'KiB':>6} {'p50 ms':>8} {'p95 ms':>8}  target")
            for label, path in targets(fleet):
                client, headers = (api, bearer) if path.startswith("/api/") else (web, {})
                times, status, size = time_one(client, base + path, headers,
                                               requests_per_target)
                worst = p95(times) * 1000
                met = status == 200 and worst < TARGET_MS
                ok &= met
                print(f"{label:<44} {status:>6} {size / 1024:>6.0f} "
                      f"{statistics.median(times) * 1000:>8.1f} {worst:>8.1f}  "
                      f"p95 < {TARGET_MS:.0f} ms {'ok' if met else 'MISSED'}")
        print(f"{name}: {'every list met' if ok else 'some lists missed'} the target "
              f"({requests_per_target} requests each; {load_average()})")
        return ok
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", metavar="DSN",
                        help="also run on PostgreSQL: a postgresql:// URL, or 'auto' for a "
                             "throw-away server (HOTDESK_BENCH_DATABASE_URL when set)")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per list")
    defaults = Fleet()
    for field in ("phones", "users", "active_sessions", "ended_sessions", "calls", "audit"):
        parser.add_argument("--" + field.replace("_", "-"), type=int,
                            default=getattr(defaults, field))
    args = parser.parse_args()
    fleet = Fleet(phones=args.phones, users=args.users, active_sessions=args.active_sessions,
                  ended_sessions=args.ended_sessions, calls=args.calls, audit=args.audit)
    # The server reads nothing but the database URL and its own listen address.
    for key in [k for k in os.environ if k.startswith("HOTDESK_")]:
        del os.environ[key]
    os.environ.update(HOTDESK_CONFIG="", HOTDESK_LOG_LEVEL="WARNING")
    print(load_average())
    ok = True
    if not args.no_sqlite:
        sqlite_dir = Path(tempfile.mkdtemp(prefix="hotdesk-fleet-sqlite."))
        try:
            ok &= run(f"sqlite:///{sqlite_dir / 'fleet.db'}", "SQLite", fleet, args.requests)
        finally:
            shutil.rmtree(sqlite_dir, ignore_errors=True)
    if args.postgres:
        server = postgres() if args.postgres == "auto" else nullcontext(args.postgres)
        with server as pg_url:
            if pg_url is None:
                sys.exit("no PostgreSQL server found for --postgres auto")
            ok &= run(pg_url, "PostgreSQL", fleet, args.requests)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
