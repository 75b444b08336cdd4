"""DST job cost per worker tick: first sight, steady state, and the tick at a DST change.

Run: .venv/bin/python bench/dst_bench.py [--phones 3000]
SQLite in a temp directory; the six vendors in turn, zone Europe/Berlin (Snom and Fanvil
carry a fixed offset and are re-provisioned at the change; the others follow the rule).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hotdesk.admin.inventory import DeviceSpec, add_device, default_tenant  # noqa: E402
from hotdesk.provisioning.dst import dst_resync  # noqa: E402
from hotdesk.runtime import start  # noqa: E402
from hotdesk.settings import Config, DatabaseConfig  # noqa: E402

VENDORS = ["yealink", "polycom", "cisco", "grandstream", "snom", "fanvil"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--phones", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Config()
        config = dataclasses.replace(
            base, database=DatabaseConfig(url=f"sqlite:///{tmp}/bench.db"),
            provisioning=dataclasses.replace(base.provisioning, timezone="Europe/Berlin"))
        rt = start(config, migrate=True)
        tenant = default_tenant()
        for i in range(args.phones):
            add_device(rt.db, tenant, DeviceSpec(mac=f"0015650{i:05x}", extension=f"9{i:05d}",
                                                 sip_password="x", vendor=VENDORS[i % 6]))
        for label, now in (("first sight", datetime(2026, 3, 29, 0, 30)),
                           ("steady", datetime(2026, 3, 29, 0, 31)),
                           ("DST change", datetime(2026, 3, 29, 1, 30))):
            started = time.perf_counter()
            notified = dst_resync(rt.db, config, now)
            elapsed = time.perf_counter() - started
            print(f"{label:12} {notified:5d} re-provisioned  {elapsed * 1000:7.0f} ms "
                  f"for {args.phones} phones")
        rt.db.close()


if __name__ == "__main__":
    main()
