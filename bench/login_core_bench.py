"""Core CPU per login: ``.venv/bin/python bench/login_core_bench.py [--profile] [--url URL]``.

Times what one ``*70`` login costs in hotdesk's core with no switch and no network:
identify the phone, check the caller, verify the PIN read from the switch, write the
session, audit and outbox rows, queue the NOTIFY. CPU time (process_time) per login is
printed beside the target (≤ 1 ms); ``--profile`` prints where it goes.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hotdesk.admin.inventory import DeviceSpec, add_device, add_user, default_tenant  # noqa: E402
from hotdesk.calls.service import CallContext, Outcome, SwitchPin  # noqa: E402
from hotdesk.runtime import start  # noqa: E402
from hotdesk.settings import load_config  # noqa: E402

TARGET_MS = 1.0


def one_login(rt, i: int, phones: int) -> None:  # type: ignore[no-untyped-def]
    svc = rt.service
    ctx = CallContext(switch="asterisk", call_id=f"b{i}", endpoint=str(8000 + i % phones),
                      source=f"127.0.0.1:{20000 + i % phones}")
    phone = svc.identify_phone(ctx)
    caller = svc.check_caller(phone, str(1000 + i % phones))
    result = svc.login(phone.id, caller.extension, "1234", ctx, SwitchPin("1234"))
    assert result.outcome is Outcome.LOGGED_IN, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="database URL (default: a new SQLite file)")
    parser.add_argument("--logins", type=int, default=2000)
    parser.add_argument("--phones", type=int, default=200)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    url = args.url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    rt = start(load_config(environ={"HOTDESK_DATABASE_URL": url}), migrate=True)
    tenant = default_tenant()
    for i in range(args.phones):
        add_user(rt.db, tenant, str(1000 + i), hotdesk=True)
        add_device(rt.db, tenant, DeviceSpec(mac=f"00:15:65:01:{i // 256:02x}:{i % 256:02x}",
                                             extension=str(8000 + i), sip_password="x"))
    for i in range(50):  # warm up: caches, prepared connections
        one_login(rt, i, args.phones)
    profiler = cProfile.Profile() if args.profile else None
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    for i in range(args.logins):
        one_login(rt, i, args.phones)
    if profiler:
        profiler.disable()
    cpu = (time.process_time() - cpu0) / args.logins * 1000
    wall = (time.perf_counter() - wall0) / args.logins * 1000
    print(f"{'database':<12} {'logins':>7} {'CPU ms/login':>13} {'wall ms/login':>14} "
          f"{'target':>8}")
    print(f"{url.split(':', 1)[0]:<12} {args.logins:>7} {cpu:>13.3f} {wall:>14.3f} "
          f"{'≤ ' + str(TARGET_MS):>8}  {'met' if cpu <= TARGET_MS else 'missed'}")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
