"""FastAGI benchmark: ``.venv/bin/python bench/agi_bench.py`` prints a table.

* login flows/s through ``hotdesk agi`` (a subprocess on SQLite, or ``--url`` PostgreSQL;
  ``--postgres`` adds a throw-away PostgreSQL run after the SQLite one, both tables
  printed; ``--workers N`` processes) with the fake Asterisk placing N concurrent calls, next to a
  minimal raw asyncio AGI server (also a subprocess) doing the same round trips,
  including the voicemail PIN read (``GET FULL VARIABLE ${VM_INFO(...)}``), with no
  database; the targets are printed beside the figures;
* p50/p99 from the fake answering GET DATA with the last PIN digit to the fake AMI
  receiving that phone's PJSIPNotify;
* the CPU (user + system) the ``hotdesk agi`` process(es) used per login at each level;
* peak RSS (VmHWM) of the ``hotdesk agi`` process after 500 concurrent calls.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.outbox_bench import postgres  # noqa: E402
from hotdesk.admin.inventory import DeviceSpec, add_device, add_user, default_tenant  # noqa: E402
from hotdesk.runtime import start  # noqa: E402
from hotdesk.settings import load_config  # noqa: E402
from hotdesk_agi.simulate import AsteriskChannel, CallSetup, place_call  # noqa: E402

RAW_SERVER = textwrap.dedent('''
    import asyncio, sys
    async def handle(reader, writer):
        while (await reader.readline()) not in (b"\\n", b""):
            pass
        for cmd in (b"ANSWER\\n", b"GET DATA agent-pass 5000 8\\n",
                    b"GET FULL VARIABLE ${VM_INFO(1000@default,password)}\\n",
                    b"SET VARIABLE HOTDESK_RESULT ok\\n", b'STREAM FILE agent-loginok ""\\n'):
            writer.write(cmd)
            await reader.readline()
        writer.close()
    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=1024)
        await server.serve_forever()
    asyncio.run(main())
''')


# The fake AMI runs in a process of its own, as Asterisk would: answering every login's
# PJSIPNotify and emergency DBPuts in the benchmark's process took CPU from the fake
# callers and slowed the measured side only. It prints each NOTIFY it receives with
# its CLOCK_MONOTONIC time (the same clock in every process).
AMI_SERVER = textwrap.dedent('''
    import asyncio, sys
    sys.path.insert(0, sys.argv[1])
    from tests.fakes.asterisk import FakeAMI
    async def main():
        ami = FakeAMI()
        print(await ami.start(), flush=True)
        seen, logins = 0, 0
        while True:
            await ami.changed.wait()
            ami.changed.clear()
            lines = [f"notify {n.at} {n.uri or n.endpoint}" for n in ami.notifies[seen:]]
            seen = len(ami.notifies)
            if ami.logins_ok != logins:
                logins = ami.logins_ok
                lines.append("login")
            if lines:
                sys.stdout.write("\\n".join(lines) + "\\n")
                sys.stdout.flush()
    asyncio.run(main())
''')


@dataclass
class Seen:
    at: float
    uri: str


class AmiProcess:
    """The fake AMI subprocess; ``notifies`` fills as it reports them."""

    def __init__(self) -> None:
        self.notifies: list[Seen] = []
        self.logins_ok = 0
        self.proc: asyncio.subprocess.Process | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", AMI_SERVER, str(ROOT), stdout=asyncio.subprocess.PIPE)
        assert self.proc.stdout is not None
        port = int(await self.proc.stdout.readline())
        self.task = asyncio.create_task(self._read())
        return port

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for line in self.proc.stdout:
            kind, *rest = line.decode().split()
            if kind == "login":
                self.logins_ok += 1
            else:
                self.notifies.append(Seen(float(rest[0]), rest[1]))

    async def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            await self.proc.wait()
        if self.task is not None:
            self.task.cancel()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read() if proc.stderr else ''}"
                             if proc.stderr else "server exited (see its log)")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not start listening")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU the processes have used so far (``/proc/PID/stat``)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / os.sysconf("SC_CLK_TCK")


def setup_db(url: str, count: int) -> None:
    cfg = load_config(environ={"HOTDESK_DATABASE_URL": url})
    rt = start(cfg, migrate=True)
    tenant = default_tenant()
    for i in range(count):
        add_user(rt.db, tenant, str(1000 + i), pin="1234", hotdesk=True)
        add_device(rt.db, tenant, DeviceSpec(mac=f"00:15:65:00:{i // 256:02x}:{i % 256:02x}",
                                             extension=str(8000 + i), sip_password="x"))
    rt.db.close()


async def login_calls(port: int, n: int, first: int, latencies: list[float] | None,
                      pin_sent: dict[str, float]) -> int:
    """N concurrent *70 calls from phones first..first+n-1; returns how many ended ok."""
    async def one(i: int) -> bool:
        endpoint, source = str(8000 + i), f"127.0.0.1:{20000 + i}"
        setup = CallSetup(script="login", args=[str(1000 + i), source, endpoint],
                          endpoint=endpoint, dialed=f"*70{1000 + i}", uniqueid=f"bench.{i}")

        def seen(command: str, reply: bytes | None) -> None:
            if command.startswith("GET DATA"):
                pin_sent[source] = time.monotonic()

        channel = AsteriskChannel(setup, ["1234"], voicemail={f"{1000 + i}@default": "1234"})
        t = await place_call("127.0.0.1", port, channel, seen, 60)
        return t.variables.get("HOTDESK_RESULT") == "ok" or "HOTDESK_RESULT" not in t.variables
    results = await asyncio.gather(*(one(first + i) for i in range(n)))
    return sum(results)


async def run_rounds(port: int, n: int, rounds: int, ami: AmiProcess | None
                     ) -> tuple[float, list]:
    latencies: list[float] = []
    total = 0
    elapsed = 0.0
    for _ in range(rounds):
        pin_sent: dict[str, float] = {}
        before = len(ami.notifies) if ami else 0
        t0 = time.perf_counter()
        total += await login_calls(port, n, 0, latencies, pin_sent)
        elapsed += time.perf_counter() - t0
        if ami is not None:
            deadline = time.monotonic() + 30
            while len(ami.notifies) < before + n and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            for note in ami.notifies[before:]:
                # After the first round the phone is registered as the user: match the
                # NOTIFY on the phone's address, not on the user part.
                address = note.uri.rsplit("@", 1)[-1]
                if address in pin_sent:
                    latencies.append((note.at - pin_sent[address]) * 1000)
    return total / elapsed, latencies


Row = tuple[int, int, float, float, float, float, float, float]


async def bench_database(url: str, args: argparse.Namespace) -> tuple[list[Row], float]:
    """Every concurrency level against ``hotdesk agi`` on ``url`` and the raw server."""
    biggest = max([*args.concurrency, args.rss_calls])
    print(f"setting up {biggest} users and phones in {url} ...", file=sys.stderr)
    setup_db(url, biggest)

    ami = AmiProcess()
    ami_port = await ami.start()
    agi_port, raw_port = free_port(), free_port()
    env = dict(os.environ, HOTDESK_DATABASE_URL=url, HOTDESK_AGI_LISTEN=f"127.0.0.1:{agi_port}",
               HOTDESK_AMI_PORT=str(ami_port), HOTDESK_AMI_SECRET="hotdesk-secret",
               HOTDESK_LOG_LEVEL="WARNING", HOTDESK_SWITCH_TYPE="asterisk",
               # measure the pipeline, not the deliberate wait for the confirmation prompt
               HOTDESK_NOTIFY_CALL_GRACE_SECONDS="0")
    # Its log goes to a file: a pipe nobody reads fills up and then blocks the process.
    log_path = Path(tempfile.mkdtemp(prefix="hotdesk-bench-log-")) / "agi.log"
    log_file = log_path.open("w")
    hot = subprocess.Popen([sys.executable, "-m", "hotdesk_cli", "agi", "--workers",
                            str(args.workers)], env=env, cwd=ROOT, stderr=log_file, text=True)
    raw = subprocess.Popen([sys.executable, "-c", RAW_SERVER, str(raw_port)],
                           stderr=subprocess.PIPE, text=True)
    try:
        wait_listening(agi_port, hot)
        wait_listening(raw_port, raw)
        while ami.logins_ok < 1:
            await asyncio.sleep(0.05)
        rows = []
        for n in args.concurrency:
            rounds = max(1, args.calls // n)
            cpu_before = cpu_seconds(_workers(hot.pid))
            hot_rate, lat = await run_rounds(agi_port, n, rounds, ami)
            cpu_ms = (cpu_seconds(_workers(hot.pid)) - cpu_before) * 1000 / (rounds * n)
            raw_rate, _ = await run_rounds(raw_port, n, rounds, None)
            lat.sort()
            p50 = statistics.median(lat) if lat else float("nan")
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan")
            rows.append((n, rounds * n, hot_rate, raw_rate, hot_rate / raw_rate, p50, p99,
                         cpu_ms))
        await run_rounds(agi_port, args.rss_calls, 1, ami)
        rss = max(peak_rss_mb(pid) for pid in _workers(hot.pid))
    finally:
        for proc in (hot, raw):
            proc.terminate()
            proc.wait(10)
        await ami.stop()
        log_file.close()
    problems = [line for line in log_path.read_text().splitlines()
                if " WARNING " in line or " ERROR " in line]
    if problems:
        print(f"hotdesk agi logged {len(problems)} warnings/errors ({log_path}), e.g. "
              f"{problems[0][:200]}", file=sys.stderr)
    return rows, rss


def print_table(name: str, rows: list[Row], rss: float, args: argparse.Namespace) -> None:
    print(f"database {name}, {args.workers} hotdesk agi process(es), load average "
          f"{os.getloadavg()[0]:.2f}")
    print(f"{'N':>5} {'calls':>6} {'hotdesk/s':>10} {'raw/s':>8} {'ratio':>6} {'target':>7} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'target':>7} {'CPU ms/login':>12}")
    for n, calls, h, r, ratio, p50, p99, cpu_ms in rows:
        ratio_target = 0.5 if n == 1 else 0.3
        p99_target = {50: "< 50", 200: "< 200"}.get(n, "")
        print(f"{n:>5} {calls:>6} {h:>10.1f} {r:>8.1f} {ratio:>6.2f} {'≥ ' + str(ratio_target):>7} "
              f"{p50:>7.1f} {p99:>7.1f} {p99_target:>7} {cpu_ms:>12.2f}")
    print(f"peak RSS of a hotdesk agi process after {args.rss_calls} concurrent calls: "
          f"{rss:.1f} MB (target < 80 MB)")


async def bench(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="hotdesk-bench-"))
    urls = [("sqlite", f"sqlite:///{tmp / 'bench.db'}")]
    if args.url:
        urls = [(args.url.split(":", 1)[0], args.url)]
    with contextlib.ExitStack() as stack:
        if args.postgres:
            pg_url = stack.enter_context(postgres())
            if pg_url is None:
                raise SystemExit("--postgres: no PostgreSQL server binaries in "
                                 "/usr/lib/postgresql and no HOTDESK_BENCH_DATABASE_URL")
            urls.append(("postgresql", pg_url))
        results = [(name, *await bench_database(url, args)) for name, url in urls]
    for name, rows, rss in results:
        print_table(name, rows, rss, args)
def _workers(pid: int) -> list[int]:
    """The process itself, or its worker processes (--workers N)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    children = [int(p) for p in path.read_text().split()] if path.exists() else []
    return children or [pid]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 50, 200])
    parser.add_argument("--calls", type=int, default=400, help="calls per concurrency level")
    parser.add_argument("--rss-calls", type=int, default=500)
    parser.add_argument("--url", help="database URL (default: a new SQLite file)")
    parser.add_argument("--postgres", action="store_true",
                        help="also run the hotdesk column on PostgreSQL: a throw-away server "
                             "(like scripts/test), or HOTDESK_BENCH_DATABASE_URL")
    parser.add_argument("--workers", type=int, default=1, help="hotdesk agi processes")
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
