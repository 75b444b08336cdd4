"""Event Socket benchmark: ``.venv/bin/python bench/esl_bench.py`` prints a table.

* login flows/s through ``hotdesk esl`` (a subprocess on SQLite, or ``--url``
  PostgreSQL) with the fake FreeSWITCH (tests/fakes/freeswitch.py, the captured events
  byte for byte) opening N concurrent outbound sessions, next to a minimal raw asyncio
  outbound Event Socket server (also a subprocess) making the same round trips with no
  database: connect, myevents, linger, answer, play_and_get_digits, ``api user_data …
  param vm-password``, set, playback, hangup, exit; the targets are printed beside them;
* p50/p99 from the fake sending the play_and_get_digits completion (the PIN's last
  digit) to the fake inbound event socket (a process of its own) receiving that phone's
  ``sendevent NOTIFY``
  (``[notify] call_grace_seconds`` = 0);
* CPU milliseconds per call of each process (the fake runs in this one), so a figure
  bounded by the fake rather than by hotdesk shows as such.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.agi_bench import free_port, wait_listening  # noqa: E402
from hotdesk.admin.inventory import DeviceSpec, add_device, add_user, default_tenant  # noqa: E402
from hotdesk.runtime import start  # noqa: E402
from hotdesk.settings import load_config  # noqa: E402
from tests.fakes.freeswitch import CAP_DOMAIN, CallSpec, FakeCall  # noqa: E402

RAW_SERVER = textwrap.dedent('''
    import asyncio, sys, uuid

    async def message(reader):
        head = await reader.readuntil(b"\\n\\n")
        size = 0
        for line in head.split(b"\\n"):
            if line.startswith(b"Content-Length: "):
                size = int(line[16:])
        return head, (await reader.readexactly(size) if size else b"")

    async def request(reader, writer, data):
        writer.write(data)
        while True:
            head, body = await message(reader)
            if b"Content-Type: command/reply" in head or b"Content-Type: api/response" in head:
                return body

    async def execute(reader, writer, app, arg=b""):
        event_uuid = str(uuid.uuid4()).encode()
        await request(reader, writer, b"sendmsg\\ncall-command: execute\\nexecute-app-name: "
                      + app + (b"\\nexecute-app-arg: " + arg if arg else b"")
                      + b"\\nEvent-UUID: " + event_uuid + b"\\n\\n")
        mark = b"\\nApplication-UUID: " + event_uuid + b"\\n"
        while True:
            head, body = await message(reader)
            if mark in body and body.startswith(b"Event-Name: CHANNEL_EXECUTE_COMPLETE\\n"):
                return body

    async def handle(reader, writer):
        try:
            await request(reader, writer, b"connect\\n\\n")
            await request(reader, writer, b"myevents\\n\\n")
            await request(reader, writer, b"linger 5\\n\\n")
            await execute(reader, writer, b"answer")
            await execute(reader, writer, b"play_and_get_digits", b"1 8 1 5000 # "
                          b"ivr/ivr-please_enter_pin_followed_by_pound.wav "
                          b"silence_stream://250 hotdesk_pin \\\\d+ 3000 ")
            await request(reader, writer, b"api user_data 1@d param vm-password\\n\\n")
            await execute(reader, writer, b"set", b"HOTDESK_RESULT=ok")
            await execute(reader, writer, b"playback", b"ivr/ivr-you_are_now_logged_in.wav")
            await execute(reader, writer, b"hangup", b"NORMAL_CLEARING")
            await request(reader, writer, b"exit\\n\\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=1024)
        await server.serve_forever()

    asyncio.run(main())
''')


class TimedCall(FakeCall):
    """A fake call that notes when it handed over the PIN (the play_and_get_digits
    completion, which carries the last digit)."""

    pin_sent = 0.0

    def _send(self, data: bytes) -> None:
        super()._send(data)
        if b"play_and_get_digits" in data and b"CHANNEL_EXECUTE_COMPLETE" in data:
            self.pin_sent = time.monotonic()


# The fake inbound event socket in a process of its own (the fake calls' threads would
# otherwise hold up its replies to sendevent): one line per NOTIFY, arrival time
# (CLOCK_MONOTONIC, the same clock in every process) and contact. It answers the
# emergency entries' ``db`` commands as mod_db does, so they are written once, as on a
# real switch, instead of refused and retried.
INBOUND_SERVER = textwrap.dedent('''
    import sys, time
    sys.path.insert(0, sys.argv[1])
    from tests.fakes.freeswitch_emergency import FakeEmergencyFreeSWITCH

    class Timed(FakeEmergencyFreeSWITCH):
        def _command(self, conn, cmd, lines, subs):
            if cmd.startswith("sendevent NOTIFY"):
                headers = dict(ln.split(": ", 1) for ln in lines if ": " in ln)
                print(time.monotonic(), headers.get("contact-uri", ""), flush=True)
            return super()._command(conn, cmd, lines, subs)

    server = Timed()
    server.start()
    print(server.address[1], flush=True)
    sys.stdin.read()  # until the bench ends
    server.stop()
''')


class InboundProcess:
    """The fake inbound event socket subprocess and the NOTIFYs it reported."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", INBOUND_SERVER, str(ROOT)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        self.arrivals: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            at, _, contact = line.strip().partition(" ")
            with self._lock:
                self.arrivals.append((float(at), contact))

    def seen(self) -> list[tuple[float, str]]:
        with self._lock:
            return list(self.arrivals)

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def setup_db(url: str, count: int) -> None:
    cfg = load_config(environ={"HOTDESK_DATABASE_URL": url})
    rt = start(cfg, migrate=True)
    tenant = default_tenant()
    for i in range(count):
        add_user(rt.db, tenant, f"5{i:04d}", hotdesk=True)
        add_device(rt.db, tenant, DeviceSpec(mac=f"00:15:65:01:{i // 256:02x}:{i % 256:02x}",
                                             extension=f"9{i:04d}", sip_password="x"))
    rt.db.close()


def spec(i: int) -> CallSpec:
    """User 5nnnn logs in on phone 9nnnn, which calls from its own address."""
    return CallSpec(endpoint=f"9{i:04d}", extension=f"5{i:04d}", digits=["1234"],
                    source=f"127.0.0.1:{20000 + i}", linger_scale=0.0,
                    vm_passwords={f"5{i:04d}@{CAP_DOMAIN}": "1234"})


def run_level(port: int, concurrency: int, first: int, calls: int) -> tuple[float, list, int]:
    """``calls`` logins (phones first…), ``concurrency`` sessions open at any moment;
    returns seconds, the finished calls and how many set HOTDESK_RESULT=ok."""
    done: list[TimedCall] = []
    index = iter(range(first, first + calls))
    lock = threading.Lock()

    def worker() -> None:
        for i in index:  # shared iterator: each session takes the next phone
            call = TimedCall(spec(i))
            call.run(("127.0.0.1", port), timeout=120)
            with lock:
                done.append(call)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    ok = sum(("set", "HOTDESK_RESULT=ok") in call.executed() for call in done)
    return elapsed, done, ok


def notify_latencies(inbound: InboundProcess, calls: list,
                     timeout: float = 30.0) -> list[float]:
    """ms from each call's PIN to its phone's NOTIFY (waits up to ``timeout`` for them)."""
    by_address = {f"{c.ip}:{c.port}": c for c in calls}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = {}
        for at, contact in inbound.seen():
            address = contact.rsplit("@", 1)[-1]
            if address in by_address and address not in seen:
                seen[address] = at
        if len(seen) >= len(calls):
            break
        time.sleep(0.02)
    return sorted((at - by_address[a].pin_sent) * 1000 for a, at in seen.items())


def measure(port: int, pids: list[int], concurrency: int, first: int,
            calls: int) -> tuple[float, list, int, list[float]]:
    """run_level plus CPU ms per call of this process and of ``pids``."""
    before = [time.process_time()] + [cpu_seconds(p) for p in pids]
    elapsed, done, ok = run_level(port, concurrency, first, calls)
    after = [time.process_time()] + [cpu_seconds(p) for p in pids]
    cpu = [(a - b) * 1000 / calls for a, b in zip(after, before, strict=True)]
    return calls / elapsed, done, ok, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,50,200", help="concurrent sessions")
    parser.add_argument("--calls", type=int, default=400, help="login calls per level")
    parser.add_argument("--url", help="database URL (default: a new SQLite file)")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    warmup = 20
    sizes = [max(args.calls, level) for level in levels]
    tmp = Path(tempfile.mkdtemp(prefix="hotdesk-esl-bench-"))
    url = args.url or f"sqlite:///{tmp / 'bench.db'}"
    print(f"setting up {warmup + sum(sizes)} users and phones in {url} ...", file=sys.stderr)
    setup_db(url, warmup + sum(sizes))

    inbound = InboundProcess()
    esl_port, raw_port = free_port(), free_port()
    env = dict(os.environ, HOTDESK_DATABASE_URL=url, HOTDESK_ESL_LISTEN=f"127.0.0.1:{esl_port}",
               HOTDESK_ESL_PORT=str(inbound.port), HOTDESK_SWITCH_TYPE="freeswitch",
               HOTDESK_TENANT_DEFAULT_DOMAIN=CAP_DOMAIN, HOTDESK_LOG_LEVEL="WARNING",
               # measure the pipeline, not the deliberate wait for the confirmation prompt
               HOTDESK_NOTIFY_CALL_GRACE_SECONDS="0")
    hot = subprocess.Popen([sys.executable, "-m", "hotdesk_cli", "esl"], env=env, cwd=ROOT,
                           stderr=subprocess.PIPE, text=True)
    raw = subprocess.Popen([sys.executable, "-c", RAW_SERVER, str(raw_port)],
                           stderr=subprocess.PIPE, text=True)
    rows = []
    try:
        wait_listening(esl_port, hot)
        wait_listening(raw_port, raw)
        _, done, _ = run_level(esl_port, 1, 0, warmup)  # and the inbound link is up
        notify_latencies(inbound, done)
        first = warmup
        for level, calls in zip(levels, sizes, strict=True):
            hot_rate, done, ok, hot_cpu = measure(esl_port, [hot.pid], level, first, calls)
            lat = notify_latencies(inbound, done)
            raw_rate, _, raw_ok, raw_cpu = measure(raw_port, [raw.pid], level, first, calls)
            first += calls
            rows.append((level, calls, ok, hot_rate, raw_rate, lat, hot_cpu + raw_cpu))
    finally:
        for proc in (hot, raw):
            proc.terminate()
            proc.wait(10)
        inbound.stop()

    print(f"database {url.split(':', 1)[0]}; load average {os.getloadavg()[0]:.2f} "
          f"{os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    print(f"{'N':>4} {'calls':>6} {'ok':>5} {'hotdesk/s':>10} {'raw/s':>7} {'ratio':>6} "
          f"{'target':>7} {'p50 ms':>7} {'p99 ms':>7} {'target':>7} {'NOTIFYs':>7} | "
          "CPU ms per call: fake+hotdesk, fake+raw")
    for level, calls, ok, hot_rate, raw_rate, lat, cpu in rows:
        p50 = statistics.median(lat) if lat else float("nan")
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan")
        ratio_target = "≥ 0.5" if level == 1 else "≥ 0.3"
        p99_target = {50: "< 50", 200: "< 200"}.get(level, "")
        print(f"{level:>4} {calls:>6} {ok:>5} {hot_rate:>10.1f} {raw_rate:>7.1f} "
              f"{hot_rate / raw_rate:>6.2f} {ratio_target:>7} {p50:>7.1f} {p99:>7.1f} "
              f"{p99_target:>7} {len(lat):>7} | {cpu[0]:.2f}+{cpu[1]:.2f}, "
              f"{cpu[2]:.2f}+{cpu[3]:.2f}")


if __name__ == "__main__":
    main()
