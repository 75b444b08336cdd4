"""PostgreSQL connections held by the outbound Event Socket server under many calls.

    .venv/bin/python bench/db_connections_bench.py --database-url postgresql://… \
        [--calls 200] [--keying 2.0] [--slots 4]

N calls arrive at once and each caller takes ``--keying`` seconds to key the PIN (the
fake FreeSWITCH of tests/fakes/freeswitch.py; the PIN is the user's vm-password read
over the call's socket).
The server's own count (pg_stat_activity) is sampled every 10 ms. Two runs: steps give
their connection back ([esl] db_slots bounds connections, as shipped) and, for
comparison, the earlier behaviour where each call thread kept its connection until the
call ended. The database's tables are dropped and recreated.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg2  # noqa: E402

from esl_handlers.outbound import EslServer  # noqa: E402
from hotdesk.admin.inventory import DeviceSpec, add_device, add_user, default_tenant  # noqa: E402
from hotdesk.runtime import start  # noqa: E402
from hotdesk.settings import Config, DatabaseConfig, EslConfig  # noqa: E402
from hotdesk.store.db import open_database  # noqa: E402
from hotdesk.store.models import ALL_MODELS  # noqa: E402
from tests.fakes.freeswitch import CallSpec, FakeCall  # noqa: E402


def backends(conn) -> set[int]:  # type: ignore[no-untyped-def]
    with conn.cursor() as cur:
        cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid()")
        return {row[0] for row in cur.fetchall()}


def run(url: str, calls: int, keying: float, slots: int, hold: bool) -> tuple[int, int, float]:
    cfg = dataclasses.replace(
        Config(), database=DatabaseConfig(url=url, max_connections=calls + 10 if hold
                                          else slots + 4),
        esl=dataclasses.replace(EslConfig(), db_slots=slots))
    rt = start(cfg, migrate=True)
    tenant = default_tenant()
    for n in range(calls):
        add_user(rt.db, tenant, f"5{n:04d}", hotdesk=True)
        add_device(rt.db, tenant, DeviceSpec(mac=f"00:15:65:03:{n // 256:02x}:{n % 256:02x}",
                                             extension=f"9{n:04d}", sip_password="x"))
    rt.db.close()
    server = EslServer(rt, "127.0.0.1:0", max_calls=calls + 10)
    if hold:  # each call thread keeps its connection from its first step to its end
        server.db_gate = threading.BoundedSemaphore(slots)  # type: ignore[assignment]
    server.start()
    sampler = psycopg2.connect(url)
    sampler.autocommit = True
    before = backends(sampler)
    fakes = [FakeCall(CallSpec(endpoint=f"9{n:04d}", extension=f"5{n:04d}", digits=["1234"],
                               keying_seconds=keying, linger_scale=0.0,
                               vm_passwords={f"5{n:04d}@127.0.0.1": "1234"}))
             for n in range(calls)]
    threads = [threading.Thread(target=f.run, args=(server.address, 120)) for f in fakes]
    peak = 0
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        peak = max(peak, len(backends(sampler) - before))
        time.sleep(0.01)
    elapsed = time.perf_counter() - t0
    server.stop()
    sampler.close()
    ok = sum(dict(f.executed()).get("set") == "HOTDESK_RESULT=ok" for f in fakes)
    rt.db.close_all()
    return peak, ok, elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True, help="a PostgreSQL database to use")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--keying", type=float, default=2.0)
    parser.add_argument("--slots", type=int, default=4)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(f"{'mode':<28} {'calls':>6} {'ok':>6} {'peak connections':>17} {'seconds':>8}")
    for hold in (False, True):
        db = open_database(args.database_url)
        db.drop_tables(list(reversed(ALL_MODELS)), safe=True, cascade=True)
        db.close_all()  # type: ignore[attr-defined]
        peak, ok, elapsed = run(args.database_url, args.calls, args.keying, args.slots, hold)
        mode = "held through prompts (old)" if hold else "released between steps"
        print(f"{mode:<28} {args.calls:>6} {ok:>6} {peak:>17} {elapsed:>8.1f}")


if __name__ == "__main__":
    main()
