"""Render every config of N devices (default 10,000) from a temp SQLite database.

Usage: .venv/bin/python bench/provisioning_bench.py [--devices N] [--render-dir DIR] [--keep DB]
Prints the time of the bulk render (compiled templates, three queries for all devices)
and, with --render-dir, of writing the files atomically as `provision render-all` does.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hotdesk.provisioning.render import all_profiles, make_environment, render_all, render_profile  # noqa: E402
from hotdesk.provisioning.vendors import VENDORS, get_vendor  # noqa: E402
from hotdesk.runtime import start  # noqa: E402
from hotdesk.settings import Config, DatabaseConfig, ProvisioningConfig  # noqa: E402
from hotdesk.store.models import Device, Session, User, new_token  # noqa: E402


def populate(rt, n: int) -> None:
    """n devices over all vendors, a third of them with a logged-in user."""
    vendors = sorted(VENDORS)
    tenant_id = 1
    with rt.db.atomic():
        Device.insert_many([dict(
            tenant=tenant_id, mac=f"0015{i:08x}", vendor=vendors[i % len(vendors)],
            idle_extension=str(100000 + i), idle_sip_username=str(100000 + i),
            idle_sip_password=f"idle-{i}", prov_token=new_token(), display_name=f"Desk {i}")
            for i in range(n)]).execute()
        users = n // 3
        User.insert_many([dict(
            tenant=tenant_id, extension=str(200000 + i), sip_username=str(200000 + i),
            display_name=f"User {i}", sip_password=f"user-{i}", hotdesk_enabled=True,
            keys_json='[{"type": "blf", "value": "201", "label": "Colleague"}]')
            for i in range(users)]).execute()
        Session.insert_many([dict(tenant=tenant_id, device=1 + 3 * i, user=1 + i)
                             for i in range(users)]).execute()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--render-dir", default="")
    parser.add_argument("--keep", default="", help="keep the database at this path")
    args = parser.parse_args()
    random.seed(1)
    workdir = tempfile.mkdtemp(prefix="hotdesk-bench-")
    db_path = args.keep or os.path.join(workdir, "bench.db")
    config = dataclasses.replace(
        Config(), database=DatabaseConfig(url=f"sqlite:///{db_path}"),
        provisioning=ProvisioningConfig(render_dir=args.render_dir))
    rt = start(config, migrate=True)
    if Device.select().count() == 0:
        t0 = time.perf_counter()
        populate(rt, args.devices)
        print(f"created {args.devices} devices in {time.perf_counter() - t0:.2f} s")
    env = make_environment(config)
    t0 = time.perf_counter()
    files = 0
    size = 0
    for device, profile in all_profiles(config):
        out = render_profile(env, get_vendor(device.vendor), profile)
        files += len(out)
        size += sum(len(c) for c in out.values())
    elapsed = time.perf_counter() - t0
    n = Device.select().count()
    print(f"rendered {files} files ({size / 1e6:.1f} MB) for {n} devices in {elapsed:.2f} s "
          f"({n / elapsed:,.0f} devices/s; target < 2 s)")
    if args.render_dir:
        t0 = time.perf_counter()
        report = render_all(env, config)
        print(f"render-all wrote {report.written} files to {args.render_dir} in "
              f"{time.perf_counter() - t0:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
