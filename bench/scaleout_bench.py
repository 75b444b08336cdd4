"""Scale-out on PostgreSQL: logins/s with 1 and 2 ``hotdesk agi`` (and ``esl``) processes.

    .venv/bin/python bench/scaleout_bench.py [--url postgresql://…] [--switch agi esl]
        [--phones 400] [--concurrency 20] [--seconds 10] [--driver-cpus 1]

Starts a throw-away PostgreSQL (or uses ``--url`` / HOTDESK_BENCH_DATABASE_URL; its
tables are dropped and made again), seeds N users and phones, then for each switch
runs ``hotdesk agi --workers 1`` and ``--workers 2`` (``hotdesk esl --workers 1/2``)
against a fake switch placing login calls back to back from its own process
(bench/switch_load.py; ``--driver-cpus`` pins it with taskset). Prints logins/s for
1 and 2 processes and their ratio beside the target (≥ 1.7×), and where the CPU went
in the measured window, read from /proc: the hotdesk processes, the PostgreSQL server
processes, the load generator, and everything else on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.outbox_bench import fresh, postgres  # noqa: E402
from hotdesk.admin.inventory import DeviceSpec, add_device, add_user, default_tenant  # noqa: E402

TARGET = 1.7
TICK = os.sysconf("SC_CLK_TCK")


def seed(url: str, phones: int) -> str:
    """Fresh tables, ``phones`` users and phones; returns the tenant's SIP domain."""
    db = fresh(url)
    tenant = default_tenant()
    for i in range(phones):
        add_user(db, tenant, str(1000 + i), hotdesk=True)
        add_device(db, tenant, DeviceSpec(mac=f"00:15:65:02:{i // 256:02x}:{i % 256:02x}",
                                          extension=str(8000 + i), sip_password="x"))
    domain = tenant.sip_domain
    db.close()
    return domain


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"hotdesk exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("hotdesk did not start listening")


# -- CPU from /proc -------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) so far; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def machine_busy() -> float:
    """CPU-seconds all cores spent busy since boot (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / TICK


def postmaster_of(url: str) -> int | None:
    """The PostgreSQL server's main process, when it runs on this machine."""
    import psycopg2

    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        backend = cur.fetchone()[0]
    conn.close()
    try:
        return int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None


class Snapshot:
    """CPU-seconds of each group of processes at one moment."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.at = time.monotonic()
        self.busy = machine_busy()
        self.cpu = {name: {pid: cpu_seconds(pid) for pid in pids}
                    for name, pids in groups.items()}

    def since(self, before: Snapshot) -> dict[str, float]:
        """CPU-seconds per group between ``before`` and now (a process that appeared
        meanwhile counts whole), plus "other": the rest of the machine."""
        out = {name: sum(cpu - before.cpu[name].get(pid, 0.0) for pid, cpu in pids.items())
               for name, pids in self.cpu.items()}
        out["other"] = max(self.busy - before.busy - sum(out.values()), 0.0)
        out["wall"] = self.at - before.at
        return out


# -- one run ----------------------------------------------------------------------------

def run(url: str, switch: str, workers: int, args: argparse.Namespace, domain: str,
        postmaster: int | None) -> dict[str, float]:
    port = free_port()
    driver_cmd = [sys.executable, str(ROOT / "bench" / "switch_load.py"), switch,
                  "--target", f"127.0.0.1:{port}", "--phones", str(args.phones),
                  "--concurrency", str(args.concurrency), "--seconds", str(args.seconds),
                  "--warmup", str(args.warmup), "--domain", domain]
    if args.driver_cpus:
        driver_cmd = ["taskset", "-c", args.driver_cpus, *driver_cmd]
    driver = subprocess.Popen(driver_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, cwd=ROOT)
    assert driver.stdout is not None and driver.stdin is not None
    switch_port = int(driver.stdout.readline().split()[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTDESK_")}
    env.update(HOTDESK_DATABASE_URL=url, HOTDESK_LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT),
               HOTDESK_NOTIFY_CALL_GRACE_SECONDS="0")
    if switch == "agi":
        env.update(HOTDESK_SWITCH_TYPE="asterisk", HOTDESK_AGI_LISTEN=f"127.0.0.1:{port}",
                   HOTDESK_AMI_PORT=str(switch_port), HOTDESK_AMI_SECRET="hotdesk-secret")
    else:
        env.update(HOTDESK_SWITCH_TYPE="freeswitch", HOTDESK_ESL_LISTEN=f"127.0.0.1:{port}",
                   HOTDESK_ESL_HOST="127.0.0.1", HOTDESK_ESL_PORT=str(switch_port),
                   HOTDESK_ESL_PASSWORD="ClueCon")
    hot = subprocess.Popen([sys.executable, "-m", "hotdesk_cli", switch, "--workers",
                            str(workers)], env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        wait_listening(port, hot)
        deadline = time.monotonic() + 30
        while workers > 1 and len(children(hot.pid)) < workers:
            if time.monotonic() > deadline:
                raise SystemExit("the workers did not start")
            time.sleep(0.1)
        time.sleep(1.0 if workers > 1 else 0.2)  # every worker listening
        hotdesk = [hot.pid, *children(hot.pid)]
        driver_pids = [driver.pid, *children(driver.pid)]  # taskset execs, so same pid

        def groups() -> dict[str, list[int]]:
            return {"hotdesk": hotdesk, "postgres": ([postmaster, *children(postmaster)]
                                                     if postmaster else []),
                    "driver": driver_pids}

        driver.stdin.write("go\n")
        driver.stdin.flush()
        before = after = None
        result: dict[str, float] = {}
        for line in driver.stdout:
            word = line.split(" ", 1)[0].strip()
            if word == "start":
                before = Snapshot(groups())
            elif word == "end":
                after = Snapshot(groups())
                per_worker = [cpu_seconds(pid) - before.cpu["hotdesk"].get(pid, 0.0)
                              for pid in hotdesk[1:]] if before else []
            elif word == "result":
                result = json.loads(line.split(" ", 1)[1])
                break
        if before is None or after is None or not result:
            raise SystemExit(f"the load generator stopped early: {result}")
        cpu = after.since(before)
        result.update(cpu=cpu, per_worker=per_worker)  # type: ignore[arg-type]
        return result
    finally:
        hot.terminate()
        try:
            hot.wait(15)
        except subprocess.TimeoutExpired:
            hot.kill()
        driver.wait(30)


def report(switch: str, rows: dict[int, dict[str, float]], args: argparse.Namespace) -> None:
    print(f"\n{switch}: {args.phones} phones, {args.concurrency} calls in flight, "
          f"{args.seconds:.0f} s measured, PostgreSQL"
          + (f", load generator pinned to CPU {args.driver_cpus}" if args.driver_cpus else ""))
    print(f"{'processes':>9} {'calls':>6} {'ok':>6} {'logins/s':>9} | CPU % of one core: "
          f"{'hotdesk':>8} {'(each)':>12} {'postgres':>9} {'load gen':>9} {'other':>6} | "
          f"{'hotdesk ms/login':>16}")
    for workers, r in sorted(rows.items()):
        cpu = r["cpu"]
        wall = cpu["wall"]  # type: ignore[index]
        rate = r["ok"] / r["seconds"]
        each = "/".join(f"{c / wall * 100:.0f}" for c in r["per_worker"]) or "-"  # type: ignore[attr-defined]
        per_login = cpu["hotdesk"] / max(r["ok"], 1) * 1000  # type: ignore[index]
        print(f"{workers:>9} {r['calls']:>6} {r['ok']:>6} {rate:>9.1f} | {'':>18} "
              f"{cpu['hotdesk'] / wall * 100:>8.0f} {each:>12} "  # type: ignore[index]
              f"{cpu['postgres'] / wall * 100:>9.0f} {cpu['driver'] / wall * 100:>9.0f} "  # type: ignore[index]
              f"{cpu['other'] / wall * 100:>6.0f} | {per_login:>16.2f}")  # type: ignore[index]
    if 1 in rows and 2 in rows:
        ratio = (rows[2]["ok"] / rows[2]["seconds"]) / max(rows[1]["ok"] / rows[1]["seconds"],
                                                           1e-9)
        print(f"2 processes / 1 process: {ratio:.2f}×  (target ≥ {TARGET}×: "
              f"{'met' if ratio >= TARGET else 'missed'})")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} "
          "(100 % = one core busy for the whole window)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="PostgreSQL URL (default: a throw-away server)")
    parser.add_argument("--switch", nargs="+", choices=["agi", "esl"], default=["agi", "esl"])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--phones", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=20, help="calls in flight")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--driver-cpus", help="taskset CPU list for the load generator")
    args = parser.parse_args()
    if args.driver_cpus and not shutil.which("taskset"):
        raise SystemExit("taskset not found (util-linux)")
    if args.url:
        os.environ["HOTDESK_BENCH_DATABASE_URL"] = args.url
    with postgres() as url:
        if url is None:
            raise SystemExit("no PostgreSQL: install it or pass --url postgresql://…")
        print(f"seeding {args.phones} users and phones ...", file=sys.stderr)
        domain = seed(url, args.phones)
        postmaster = postmaster_of(url)
        for switch in args.switch:
            rows = {w: run(url, switch, w, args, domain, postmaster) for w in args.workers}
            report(switch, rows, args)


if __name__ == "__main__":
    main()
