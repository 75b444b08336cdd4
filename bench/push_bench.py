"""Paced push benchmark: one campaign over many phones, NOTIFYs sent through a real
``hotdesk agi`` process to the fake AMI (tests/fakes/asterisk.py).

Run: .venv/bin/python bench/push_bench.py [--phones 10000] [--rate 100] [--pacers 2]
     [--database-url postgresql://… | --postgres (a throw-away server, as outbox_bench)]

Prints the rate the phones' NOTIFYs reached the switch beside ``[notify] push_rate``,
the worst one-second window, the release step's cost per tick (``pacing.release``, run
here by ``--pacers`` threads as the workers would), and how long ordinary NOTIFYs queued
during the push took to reach the switch (they are not paced). With the default rate of
20/s, 10,000 phones take about 8 minutes; ``--rate`` shortens the run.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.agi_bench import free_port, wait_listening  # noqa: E402
from hotdesk.admin.inventory import default_tenant  # noqa: E402
from hotdesk.notify import campaigns, outbox, pacing  # noqa: E402
from hotdesk.notify.push_models import PushCampaign, PushPacer, PushTarget  # noqa: E402
from hotdesk.runtime import start  # noqa: E402
from hotdesk.settings import Config, DatabaseConfig  # noqa: E402
from hotdesk.store.models import Device, OutboxNotify, utcnow  # noqa: E402
from tests.fakes.asterisk import FakeAMI  # noqa: E402


def setup(url: str, phones: int, rate: float) -> Config:
    base = Config()
    config = dataclasses.replace(base, database=DatabaseConfig(url=url),
                                 notify=dataclasses.replace(base.notify, push_rate=rate))
    rt = start(config, migrate=True)
    tenant = default_tenant()
    rows = [{"tenant": tenant.id, "mac": f"0015ee{i:06x}", "idle_extension": str(100000 + i),
             "idle_sip_username": str(100000 + i), "idle_sip_password": "x",
             "fetched_version": 1, "prov_token": f"bench-push-{i:06d}"} for i in range(phones)]
    with rt.db.atomic():
        for i in range(0, phones, 500):
            Device.insert_many(rows[i:i + 500]).execute()
    rt.db.close()
    return config


def release_cost_alone(config: Config, ticks: int = 40) -> list[float]:
    """The release step with no other writer (its own cost, no lock waits): a push over
    every phone, one step per tick on a stepped clock, its rows marked sent in between.
    The push is cancelled and its rows removed afterwards."""
    rt = start(config)
    ids = [d.id for d in Device.select(Device.id)]
    t0 = utcnow()
    c = campaigns.start(config, "all", ids, actor="bench", now=t0)
    costs = []
    for k in range(1, ticks + 1):
        started = time.perf_counter()
        pacing.release(config, now=t0 + timedelta(seconds=pacing.TICK_SECONDS * k))
        costs.append(time.perf_counter() - started)
        OutboxNotify.update(status="sent").where(OutboxNotify.status == "pending").execute()
    campaigns.cancel(c.id, None, "bench")
    OutboxNotify.delete().execute()
    PushCampaign.delete().execute()
    PushPacer.delete().execute()  # its clock ran ahead with the stepped one
    rt.db.close()
    return sorted(costs)


class Pacer(threading.Thread):
    """A worker's release loop, timed per step."""

    def __init__(self, config: Config, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.config, self.stop = config, stop
        self.costs: list[float] = []
        self.released = 0
        self.held = 0  # steps where unsent phones held the push (the drain was behind)

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.perf_counter()
            result = pacing.release(self.config)
            if result.running:
                self.costs.append(time.perf_counter() - started)
            self.released += result.released
            self.held += bool(result.held)
            self.stop.wait(pacing.TICK_SECONDS)


async def bench(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="hotdesk-push-bench-"))
    url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
    print(f"setting up {args.phones} phones in {url.split(':', 1)[0]} ...", file=sys.stderr)
    config = setup(url, args.phones, args.rate)
    alone = release_cost_alone(config)
    ami = FakeAMI()
    ami_port = await ami.start()
    env = dict(os.environ, HOTDESK_DATABASE_URL=url, HOTDESK_AMI_PORT=str(ami_port),
               HOTDESK_AMI_SECRET="hotdesk-secret", HOTDESK_LOG_LEVEL="WARNING",
               HOTDESK_SWITCH_TYPE="asterisk", HOTDESK_NOTIFY_CALL_GRACE_SECONDS="0",
               HOTDESK_AGI_LISTEN=f"127.0.0.1:{free_port()}", HOTDESK_CONFIG="")
    agi = subprocess.Popen([sys.executable, "-m", "hotdesk_cli", "agi"], env=env, cwd=ROOT,
                           stderr=subprocess.PIPE, text=True)
    stop = threading.Event()
    pacers = [Pacer(config, stop) for _ in range(args.pacers)]
    ordinary: dict[str, float] = {}
    baseline: dict[str, float] = {}
    try:
        wait_listening(int(env["HOTDESK_AGI_LISTEN"].rsplit(":", 1)[1]), agi)
        while ami.logins_ok < 1:
            await asyncio.sleep(0.05)
        rt = start(config)
        devices = [d.id for d in Device.select(Device.id).order_by(Device.id)]
        for n in range(5):  # the same ordinary NOTIFYs with no push running, for comparison
            baseline[f"base-{n}"] = time.monotonic()
            outbox.enqueue(Device.get_by_id(devices[n]), default_tenant(), f"base-{n}",
                           "asterisk")
            rt.db.close()
            await asyncio.sleep(1.0)
        await asyncio.sleep(2.0)
        c = campaigns.start(config, "all", devices, actor="bench")
        began = time.monotonic()
        for p in pacers:
            p.start()
        n = 0
        while PushCampaign.get_by_id(c.id).state == "running":
            await asyncio.sleep(1.0)
            if time.monotonic() - began > 5 * n + 2 and n < 20:  # an ordinary NOTIFY
                n += 1
                device = Device.get_by_id(devices[n])
                endpoint = f"login-{n}"
                ordinary[endpoint] = time.monotonic()
                outbox.enqueue(device, default_tenant(), endpoint, "asterisk")
            rt.db.close()
        elapsed = time.monotonic() - began
        released_at = sorted(t.released_at.timestamp() for t in PushTarget.select(
            PushTarget.released_at).where(PushTarget.campaign == c.id))
    finally:
        stop.set()
        for p in pacers:
            p.join(10)
        agi.terminate()
        agi.wait(10)
        await ami.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    pushed = sorted(x.at for x in ami.notifies
                    if x.endpoint not in ordinary and x.endpoint not in baseline)
    burst = args.rate * pacing.BURST_SECONDS  # a step may release this much at once
    achieved = _rate(pushed, burst)
    released_rate = _rate(released_at, burst)
    worst_sent = _most_in_a_second(pushed)
    worst_released = _most_in_a_second(released_at)
    costs = sorted(x for p in pacers for x in p.costs)
    delays = sorted(x.at - ordinary[x.endpoint] for x in ami.notifies
                    if x.endpoint in ordinary)
    quiet = sorted(x.at - baseline[x.endpoint] for x in ami.notifies
                   if x.endpoint in baseline)
    load = os.getloadavg()[0]
    print(f"paced push of {args.phones} phones, {url.split(':', 1)[0]}, {args.pacers} pacer(s), "
          f"1 hotdesk agi (AMI sender), fake AMI; load average {load:.1f}")
    rows = [
        ("NOTIFYs received by the switch", f"{len(pushed)}", f"{args.phones} (each once)"),
        ("achieved rate: released / at the switch", f"{released_rate:.1f} / {achieved:.1f} per s",
         f"{args.rate:g}/s configured"),
        ("most phones released in any 1 s", f"{worst_released}",
         f"<= {args.rate + burst:g} (rate + one burst)"),
        ("most NOTIFYs at the switch in any 1 s", f"{worst_sent}",
         "(the drain sends what was released since its last poll)"),
        ("campaign wall time", f"{elapsed:.1f} s", f"~{args.phones / args.rate:.0f} s"),
        (f"release step alone ({args.rate * pacing.TICK_SECONDS:g} phones/tick), p50 / max",
         f"{_ms(alone, 0.5)} / {_ms(alone, 1.0)} ms",
         f"<< {pacing.TICK_SECONDS * 1000:.0f} ms tick"),
        ("release step during the push (lock waits too), p50 / p99 / max",
         f"{_ms(costs, 0.5)} / {_ms(costs, 0.99)} / {_ms(costs, 1.0)} ms",
         f"<< {pacing.TICK_SECONDS * 1000:.0f} ms tick"),
        ("release steps held by unsent phones (drain behind)",
         f"{sum(p.held for p in pacers)} of {len(costs)}", "0 when the drain keeps up"),
        ("ordinary NOTIFY queued -> switch during the push, p50 / max",
         f"{_ms(delays, 0.5)} / {_ms(delays, 1.0)} ms ({len(delays)} sent)",
         "as with no push (next line): not paced"),
        ("the same with no push running, p50 / max",
         f"{_ms(quiet, 0.5)} / {_ms(quiet, 1.0)} ms ({len(quiet)} sent)",
         "the drain's poll interval (queued by another process)"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'result':<28}  target")
    for measure, value, target in rows:
        print(f"{measure:<{width}}  {value:<28}  {target}")


def _rate(times: list[float], burst: float) -> float:
    """Phones per second after the one burst a step may release at once."""
    return (len(times) - burst) / (times[-1] - times[0]) if len(times) > burst else 0.0


def _most_in_a_second(times: list[float]) -> int:
    most, first = 0, 0
    for last, t in enumerate(times):
        while times[first] <= t - 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


def _ms(values: list[float], q: float) -> str:
    if not values:
        return "-"
    return f"{values[min(len(values) - 1, int(len(values) * q))] * 1000:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phones", type=int, default=10000)
    parser.add_argument("--rate", type=float, default=100.0, help="[notify] push_rate")
    parser.add_argument("--pacers", type=int, default=2, help="release loops (workers)")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--postgres", action="store_true",
                        help="start a throw-away PostgreSQL server for the run")
    args = parser.parse_args()
    if not args.postgres:
        asyncio.run(bench(args))
        return
    from bench.outbox_bench import postgres

    with postgres() as url:
        if url is None:
            raise SystemExit("no PostgreSQL server binaries found")
        args.database_url = url
        asyncio.run(bench(args))


if __name__ == "__main__":
    main()
