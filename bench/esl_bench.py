"""Login flows/s and p99 decision latency through the outbound ESL server.

    .venv/bin/python bench/esl_bench.py [--levels 1,50,200] [--calls 400]

The fake FreeSWITCH (tests/fakes/freeswitch.py) drives N concurrent outbound sessions;
each logs a different user in on a different phone (SQLite in a temp dir); the PIN is
the user's vm-password, read from the fake's directory over the call's socket
(``api user_data``) as from a real FreeSWITCH. "decision latency" = from the fake
sending the PIN (the play_and_get_digits completion) to it receiving the
``set HOTDESK_RESULT`` command.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from esl_handlers.outbound import EslServer  # noqa: E402
from hotdesk.admin.inventory import DeviceSpec, add_device, add_user, default_tenant  # noqa: E402
from hotdesk.runtime import start  # noqa: E402
from hotdesk.settings import Config, DatabaseConfig  # noqa: E402
from tests.fakes.freeswitch import CallSpec, FakeCall  # noqa: E402


class TimedCall(FakeCall):
    def _send(self, data: bytes) -> None:
        super()._send(data)
        if b"play_and_get_digits" in data and b"CHANNEL_EXECUTE_COMPLETE" in data:
            self.pin_sent = time.perf_counter()

    def _command(self, cmd, headers):  # type: ignore[no-untyped-def]
        if headers.get("execute-app-name") == "set" and not hasattr(self, "decided"):
            self.decided = time.perf_counter()
        return super()._command(cmd, headers)


def run_level(server: EslServer, concurrency: int, calls: int, users: int,
              offset: int) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    ok = 0
    lock = threading.Lock()
    index = iter(range(calls))

    def worker() -> None:
        nonlocal ok
        for i in index:
            n = (offset + i) % users
            call = TimedCall(CallSpec(endpoint=f"9{n:04d}", extension=f"5{n:04d}",
                                      digits=["1234"], linger_scale=0.0,
                                      vm_passwords={f"5{n:04d}@127.0.0.1": "1234"}))
            call.run(server.address, timeout=60)
            with lock:
                if any(a == "set" and v == "HOTDESK_RESULT=ok" for a, v in call.executed()):
                    ok += 1
                if hasattr(call, "decided") and hasattr(call, "pin_sent"):
                    latencies.append(call.decided - call.pin_sent)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, latencies, ok


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--levels", default="1,50,200")
    parser.add_argument("--calls", type=int, default=400, help="login calls per level")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    levels = [int(x) for x in args.levels.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = dataclasses.replace(Config(), database=DatabaseConfig(url=f"sqlite:///{tmp}/b.db"))
        rt = start(cfg, migrate=True)
        users = max(levels) * 2
        tenant = default_tenant()
        for n in range(users):
            add_user(rt.db, tenant, f"5{n:04d}", hotdesk=True)
            add_device(rt.db, tenant, DeviceSpec(mac=f"00:15:65:01:{n // 256:02x}:{n % 256:02x}",
                                                 extension=f"9{n:04d}", sip_password="x"))
        server = EslServer(rt, "127.0.0.1:0", max_calls=1000)
        server.start()
        print(f"{'concurrent':>10} {'calls':>6} {'ok':>6} {'flows/s':>8} {'p50 ms':>8} "
              f"{'p99 ms':>8} {'target':>7}")
        offset = 0
        for level in levels:
            calls = max(args.calls, level)
            elapsed, lat, ok = run_level(server, level, calls, users, offset)
            offset += calls
            lat.sort()
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else float("nan")
            p50 = statistics.median(lat) * 1000 if lat else float("nan")
            target = {50: "< 50", 200: "< 200"}.get(level, "")
            print(f"{level:>10} {calls:>6} {ok:>6} {calls / elapsed:>8.1f} {p50:>8.1f} "
                  f"{p99:>8.1f} {target:>7}")
        server.stop()


if __name__ == "__main__":
    main()
