"""Operations benchmark: outbox drain rate, login rate, and catch-up after a switch reconnect.

Run: .venv/bin/python bench/outbox_bench.py [--rows 2000] [--logins 200]
Uses HOTDESK_BENCH_DATABASE_URL for PostgreSQL when set, else starts a throw-away
server (like scripts/test); SQLite runs in a temp directory. Every figure comes from
real ``hotdesk worker --drain-only`` / login processes, so process and database
overheads are included.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hotdesk.hashing import hash_pin  # noqa: E402
from hotdesk.settings import load_config  # noqa: E402
from hotdesk.store.db import open_database, upgrade  # noqa: E402
from hotdesk.store.models import ALL_MODELS, Device, OutboxNotify, Tenant, User  # noqa: E402


def run_pg(argv: list[str]) -> None:
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextmanager
def postgres() -> Iterator[str | None]:
    url = os.environ.get("HOTDESK_BENCH_DATABASE_URL")
    if url:
        yield url
        return
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not bins:
        yield None
        return
    pgbin = bins[-1]
    tmp = Path(tempfile.mkdtemp(prefix="hotdesk-bench-pg."))
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    run_pg([str(pgbin / "initdb"), "-D", str(tmp / "data"), "-U", "hotdesk", "--auth=trust"])
    run_pg([str(pgbin / "pg_ctl"), "-D", str(tmp / "data"), "-l", str(tmp / "log"), "-w", "-o",
            f"-k {tmp} -p {port} -c listen_addresses=127.0.0.1", "start"])
    try:
        run_pg([str(pgbin / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "hotdesk",
                "hotdesk_bench"])
        yield f"postgresql://hotdesk@127.0.0.1:{port}/hotdesk_bench"
    finally:
        run_pg([str(pgbin / "pg_ctl"), "-D", str(tmp / "data"), "-m", "immediate", "stop"])
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def databases() -> Iterator[list[tuple[str, str]]]:
    """(name, url) of a temp SQLite file and, when a server is at hand, PostgreSQL."""
    sqlite_dir = Path(tempfile.mkdtemp(prefix="hotdesk-bench-sqlite."))
    try:
        with postgres() as pg_url:
            dbs = [("SQLite", f"sqlite:///{sqlite_dir / 'bench.db'}")]
            if pg_url:
                dbs.append(("PostgreSQL", pg_url))
            yield dbs
    finally:
        shutil.rmtree(sqlite_dir, ignore_errors=True)


def fresh(url: str):  # type: ignore[no-untyped-def]
    if url.startswith("sqlite:///"):
        for suffix in ("", "-wal", "-shm"):
            Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
        db = open_database(url)
    else:
        db = open_database(url)
        db.drop_tables(list(reversed(ALL_MODELS)), safe=True, cascade=True)
    upgrade(db)
    return db


def env_for(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTDESK_")}
    env.update({"HOTDESK_DATABASE_URL": url, "HOTDESK_LOG_LEVEL": "WARNING",
                "HOTDESK_NOTIFY_POLL_SECONDS": "0.05", "PYTHONPATH": str(REPO), **extra})
    return env


def wait(predicate, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark step did not finish in time")
        time.sleep(0.01)


def drainers(url: str, procs: int, extra: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    cmd = [sys.executable, "-m", "hotdesk_cli", "worker", "--drain-only",
           "--sender", "bench.senders:factory"]
    return [subprocess.Popen(cmd, cwd=REPO, env=env_for(url, **extra)) for _ in range(procs)]


def stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        child.terminate()
    for child in children:
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()


def pending() -> int:
    return OutboxNotify.select().where(OutboxNotify.status == "pending").count()


def queue_rows(db, rows: int) -> None:  # type: ignore[no-untyped-def]
    data = [{"endpoint": f"e{i}", "domain": "default"} for i in range(rows)]
    with db.atomic():
        for i in range(0, rows, 500):
            OutboxNotify.insert_many(data[i:i + 500]).execute()


def drain_rate(url: str, procs: int, rows: int) -> float:
    db = fresh(url)
    ready = Path(tempfile.mkdtemp(prefix="hotdesk-bench-ready."))
    children = drainers(url, procs, {"HOTDESK_BENCH_READY_DIR": str(ready)})
    try:
        wait(lambda: len(list(ready.iterdir())) == procs, 60)
        queue_rows(db, rows)
        started = time.monotonic()
        wait(lambda: pending() == 0, 600)
        return rows / (time.monotonic() - started)
    finally:
        stop(children)
        db.close()
        shutil.rmtree(ready, ignore_errors=True)


def reconnect_catch_up(url: str, rows: int) -> float:
    db = fresh(url)
    ready = Path(tempfile.mkdtemp(prefix="hotdesk-bench-ready."))
    up = ready / "switch-up"
    children = drainers(url, 1, {"HOTDESK_BENCH_READY_DIR": str(ready),
                                 "HOTDESK_BENCH_UP_FILE": str(up),
                                 "HOTDESK_NOTIFY_POLL_SECONDS": "1.0"})
    try:
        wait(lambda: len([p for p in ready.iterdir() if p != up]) == 1, 60)
        queue_rows(db, rows)
        time.sleep(2.5)  # the drainer meets SwitchDown and backs off
        up.write_text("up")
        started = time.monotonic()
        wait(lambda: pending() == 0, 600)
        return time.monotonic() - started
    finally:
        stop(children)
        db.close()
        shutil.rmtree(ready, ignore_errors=True)


def login_rate(url: str, procs: int, logins: int) -> float:
    db = fresh(url)
    tenant = Tenant.get(Tenant.is_default == True)  # noqa: E712
    pin_hash = hash_pin("1234")
    with db.atomic():
        User.insert_many([{"tenant": tenant, "extension": str(1000 + i),
                           "sip_username": str(1000 + i), "pin_hash": pin_hash,
                           "hotdesk_enabled": True} for i in range(200)]).execute()
        Device.insert_many([{"tenant": tenant, "mac": f"0015650{i:05x}",
                             "idle_extension": str(8000 + i), "idle_sip_username": str(8000 + i),
                             "prov_token": f"bench-token-{i:05d}"} for i in range(100)]).execute()
    db.close()
    started = time.monotonic()
    children = [subprocess.Popen([sys.executable, "-m", "bench.login_worker", str(i), str(procs),
                                  str(logins)], cwd=REPO, env=env_for(url),
                                 stdout=subprocess.PIPE) for i in range(procs)]
    total_ok, busiest = 0, 0.0
    for child in children:
        out, _ = child.communicate(timeout=600)
        ok, elapsed = out.decode().split()
        total_ok += int(ok)
        busiest = max(busiest, float(elapsed))
    del started
    return total_ok / busiest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--logins", type=int, default=200, help="logins per process")
    args = parser.parse_args()
    load_config(environ={})
    results: list[tuple[str, str, str]] = []
    with databases() as dbs:
        for name, url in dbs:
            for procs in (1, 2):
                rate = drain_rate(url, procs, args.rows)
                results.append((f"outbox drain, {procs} process(es)", name,
                                f"{rate:,.0f} rows/s"))
        for name, url in dbs:
            for procs in (1, 2):
                rate = login_rate(url, procs, args.logins)
                results.append((f"logins via HotdeskService.login, {procs} process(es)",
                                name, f"{rate:,.1f} logins/s"))
        for name, url in dbs:
            seconds = reconnect_catch_up(url, args.rows)
            results.append((f"switch reconnect -> {args.rows} queued NOTIFYs sent "
                            "(poll 1 s)", name, f"{seconds:.2f} s"))
    width = max(len(r[0]) for r in results)
    print(f"{'measure':<{width}}  {'database':<10}  result")
    for measure, db, value in results:
        print(f"{measure:<{width}}  {db:<10}  {value}")


if __name__ == "__main__":
    main()
