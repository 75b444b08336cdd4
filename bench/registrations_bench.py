"""Registration storm: N phones re-register at once (a switch restart); how fast hotdesk stores it.

Run: .venv/bin/python bench/registrations_bench.py [--phones 10000]
A wire-level AMI (tests/fakes/asterisk.py, the captured event bytes) sends, per phone,
what Asterisk 22 sends on a REGISTER: ChallengeSent, SuccessfulAuth, PeerStatus,
DeviceStateChange, ContactStatus. The real watcher of ``hotdesk agi``
(hotdesk_agi/registrations.py: its own AMI connection with ``Events: system,security``,
parsing, the bounded buffer, batched writes) stores them; the clock runs from the first
event until every phone's registration is committed. Uses HOTDESK_BENCH_DATABASE_URL
for PostgreSQL when set, else a throw-away server; SQLite in a temp directory.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.outbox_bench import databases, fresh  # noqa: E402
from hotdesk.admin.inventory import default_tenant  # noqa: E402
from hotdesk.settings import AmiConfig, Config, load_config  # noqa: E402
from hotdesk.store.models import Device, Registration  # noqa: E402
from hotdesk.switch.registration_writer import RegistrationWriter  # noqa: E402
from hotdesk_agi.registrations import AmiRegistrationWatcher  # noqa: E402
from tests.fakes.asterisk import Contact, FakeAMI  # noqa: E402

TARGET = 2000.0  # events/s


def add_phones(db, n: int) -> None:  # type: ignore[no-untyped-def]
    tenant = default_tenant()
    rows = [{"tenant": tenant.id, "mac": f"0015{i:08x}", "idle_extension": str(100000 + i),
             "idle_sip_username": str(100000 + i), "prov_token": f"bench-{i}"}
            for i in range(n)]
    with db.atomic():
        for i in range(0, n, 500):
            Device.insert_many(rows[i:i + 500]).execute()


async def storm(config: Config, phones: int) -> tuple[float, int]:
    """Seconds from the first event to the last registration committed; events sent."""
    ami = FakeAMI(username="hotdesk", secret="s")
    port = await ami.start()
    cfg = dataclasses.replace(config, ami=AmiConfig(host="127.0.0.1", port=port,
                                                    username="hotdesk", secret="s"))
    writer = RegistrationWriter("asterisk", cfg.registrations)
    watcher = AmiRegistrationWatcher(cfg, writer, min_backoff=0.05)
    watcher.start()
    try:
        while not any(dict(a).get("Action") == "PJSIPShowContacts" for a in ami.actions):
            await asyncio.sleep(0.01)
        await asyncio.to_thread(writer.flush)
        base = writer.written
        started = time.monotonic()
        for i in range(phones):
            ext = str(100000 + i)
            ip = f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}"
            ami.register(Contact(ext, f"sip:{ext}@{ip}:5060;transport=UDP",
                                 call_id=f"{i}-bench@{ip}"))
            if i % 200 == 0:
                await asyncio.sleep(0)  # let the socket drain, as a real switch would
        while writer.written - base < phones:
            await asyncio.sleep(0.005)
        elapsed = time.monotonic() - started
    finally:
        await watcher.close()
        await ami.stop()
    # DeviceStateChange (class call) is not sent to a session that asked for system,security.
    return elapsed, phones * 4


def run(url: str, phones: int) -> tuple[float, float, int]:
    db = fresh(url)
    try:
        add_phones(db, phones)
        elapsed, events = asyncio.run(storm(load_config(environ={}), phones))
        stored = Registration.select().where(Registration.device.is_null(False)).count()
        if stored != phones:
            raise SystemExit(f"only {stored} of {phones} registrations stored and attributed")
        return elapsed, events / elapsed, phones
    finally:
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phones", type=int, default=10000)
    args = parser.parse_args()
    with databases() as dbs:
        results = [(name, *run(url, args.phones)) for name, url in dbs]
    print(f"registration storm: {args.phones} phones re-register; 4 AMI events each reach "
          f"the watcher (target >= {TARGET:,.0f} events/s)")
    for name, elapsed, rate, phones in results:
        verdict = "ok" if rate >= TARGET else "BELOW TARGET"
        print(f"  {name:<10}  {elapsed:6.2f} s  {rate:9,.0f} events/s  "
              f"{phones / elapsed:8,.0f} registrations/s  {verdict}")


if __name__ == "__main__":
    main()
