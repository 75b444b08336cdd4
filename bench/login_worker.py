"""One benchmark process: N logins through HotdeskService.login on its own devices."""

from __future__ import annotations

import sys
import time

from hotdesk.calls.service import CallContext, Outcome
from hotdesk.runtime import start
from hotdesk.settings import load_config
from hotdesk.store.models import Device


def main() -> None:
    index, procs, count = (int(a) for a in sys.argv[1:4])
    rt = start(load_config())
    devices = [d.id for d in Device.select().order_by(Device.id)][index::procs]
    start_at = time.monotonic()
    ok = 0
    for i in range(count):
        ext = str(1000 + (i * procs + index) % 200)
        ctx = CallContext(switch="asterisk", call_id=f"b{index}-{i}", endpoint="x")
        result = rt.service.login(devices[i % len(devices)], ext, "1234", ctx)
        ok += result.outcome is Outcome.LOGGED_IN
    print(f"{ok} {time.monotonic() - start_at:.4f}")


if __name__ == "__main__":
    main()
