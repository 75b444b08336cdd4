"""The worker's tick over a fleet of 10,000 phones: first tick and steady-state ticks.

Run: .venv/bin/python bench/reconcile_bench.py [--phones 10000] [--ticks 4] [--profile]
         [--switch asterisk|freeswitch [--sequential] [--reads-per-tick N]]
Seeds a running install's state into SQLite (temp directory) and PostgreSQL
(HOTDESK_BENCH_DATABASE_URL when set, else a throw-away server like scripts/test):
most phones fetched their config and are registered as expected, 60 % with a user
logged in (fingerprints of the accounts their configs carry, as switch mode stores
them); a few percent pending in every outbox state (in flight, sent and due, sent and
waiting, re-sends used up, already given up on, refused by the switch, never
notified), registered as the wrong account, not registered or refused; sessions past
their maximum login time or the daily cut-off; a history of ended sessions, sent
NOTIFYs and audit rows. Then times ``hotdesk.ops.worker.tick`` with every job the
worker runs (switch upkeep answered by an in-process account reader, so the figure is
hotdesk's own cost, not the switch's round trips), prints each job's share and the
statements per tick, beside the target.

``--switch asterisk`` / ``--switch freeswitch`` read the accounts through the real
protocol clients (AMI ``Getvar`` / Event Socket ``api user_data``, pipelined in one batch
per tick) from the wire-level fake of tests/fakes/ running in a process of its own, with
every logged-in user's account; ``--sequential`` reads them one round trip at a time (the
worker before batching), for comparison; ``--reads-per-tick`` sets ``[switch]
drift_reads_per_tick`` (0 = every account every tick, as before the bound). The fake is
Python, so these figures include its cost per action (bench/account_reads_bench.py
times the reads against a real switch).
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import logging
import multiprocessing
import pstats
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.outbox_bench import databases, fresh  # noqa: E402
from hotdesk.admin.inventory import default_tenant  # noqa: E402
from hotdesk.calls.service import HotdeskService  # noqa: E402
from hotdesk.notify import confirm, reconcile  # noqa: E402
from hotdesk.ops import worker  # noqa: E402
from hotdesk.provisioning.dst import dst_resync  # noqa: E402
from hotdesk.settings import Config, load_config  # noqa: E402
from hotdesk.store.models import (  # noqa: E402
    AuditEvent,
    Device,
    Heartbeat,
    OutboxNotify,
    Registration,
    RegistrationFailure,
    Session,
    User,
    utcnow,
)
from hotdesk.switch import drift  # noqa: E402
from hotdesk.switch.accounts import AccountReader, Credentials, fingerprint  # noqa: E402
from hotdesk.switch.upkeep import SwitchUpkeep  # noqa: E402

TARGET = 1.0  # seconds per tick
VENDORS = ["yealink", "polycom", "cisco", "grandstream", "snom", "fanvil"]
CHUNK = 400

# The mix: per 1,000 phones, how many are in each pending / registration state.
MIX = {"in_flight": 10, "due": 10, "waiting": 10, "exhausted": 5, "gave_up": 10,
       "failed": 5, "never": 10, "mismatch": 5, "unregistered": 5, "rejected": 2}


class Accounts:
    """The switch's accounts, answered in-process (every user's password is "pw-<ext>")."""

    def read(self, account: str, domain: str) -> Credentials:
        return Credentials(account, f"pw-{account}")


class OneByOne:
    """A switch view whose accounts are read one round trip each (no ``read_many``)."""

    def __init__(self, view) -> None:  # type: ignore[no-untyped-def]
        self.view = view

    def read(self, account: str, domain: str) -> Credentials:
        return self.view.read(account, domain)


def serve_fake(kind: str, accounts: list[str], domain: str, conn) -> None:  # type: ignore[no-untyped-def]
    """Runs in its own process: the switch's wire-level fake holding every account."""
    if kind == "asterisk":
        import asyncio

        from tests.fakes.asterisk_accounts import AccountsAMI

        async def main() -> None:
            fake = AccountsAMI(secret="bench")
            for account in accounts:
                fake.add_account(account, f"pw-{account}")
            fake.actions = _Forgetful()  # the fake keeps every action; not for hours here
            conn.send(await fake.start())
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)

        asyncio.run(main())
        return
    from tests.fakes.freeswitch_accounts import DirectoryServer

    server = DirectoryServer(password="bench")
    for account in accounts:
        server.add_user(account, domain, password=f"pw-{account}")
    server.commands = _Forgetful()
    server.start()
    conn.send(server.address[1])
    conn.recv()
    server.stop()


class _Forgetful(list):  # type: ignore[type-arg]
    def append(self, item) -> None:  # type: ignore[no-untyped-def]
        pass


class FakeSwitch:
    """The fake switch process and the view the worker reads it through."""

    def __init__(self, kind: str, accounts: list[str], domain: str, sequential: bool) -> None:
        self.kind = kind
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=serve_fake, args=(kind, accounts, domain, child),
                                   daemon=True)
        self.process.start()
        port = self.conn.recv()
        if kind == "asterisk":
            from hotdesk.settings import AmiConfig
            from hotdesk_agi.ami_sync import BlockingAmi
            from hotdesk_agi.switch_view import AsteriskView

            self.view = AsteriskView(BlockingAmi(AmiConfig(port=port, secret="bench")))
        else:
            from esl_handlers.inbound import InboundConnection
            from esl_handlers.switch_view import FreeswitchView

            inbound = InboundConnection("127.0.0.1", port, "bench")
            inbound.start()
            inbound.wait_connected(10)
            self.view = FreeswitchView(inbound)
        self.reader: AccountReader = OneByOne(self.view) if sequential else self.view

    def close(self) -> None:
        self.view.close()
        self.conn.send("stop")
        self.process.join(10)


def user_ext(i: int) -> str:
    return str(200000 + i)


def token(i: int) -> str:
    return f"bench-token-{i:06d}"


def user_fingerprint(i: int) -> str:
    ext = user_ext(i)
    return fingerprint(Credentials(ext, f"pw-{ext}"), f"User {ext}", token(i))


def fingerprints(n: int) -> list[str]:
    """What the configs of logged-in phones carried (slow hashes, computed once per run)."""
    with ProcessPoolExecutor(2) as pool:
        return list(pool.map(user_fingerprint, range(n), chunksize=200))


def categories(phones: int) -> dict[int, str]:
    """Phone index -> its state in the mix; phones not named are fetched and registered."""
    kinds: dict[int, str] = {}
    i = 7  # spread over the id range, logged-in and idle phones alike
    for kind, per_mille in MIX.items():
        for _ in range(phones * per_mille // 1000):
            while i % phones in kinds:
                i += 1
            kinds[i % phones] = kind
            i += 97
    return kinds


def insert(model, rows: list[dict]) -> None:  # type: ignore[no-untyped-def]
    for start in range(0, len(rows), CHUNK):
        model.insert_many(rows[start:start + CHUNK]).execute()


def seed(db, config: Config, phones: int, logged_in: int, prints: list[str],
         history: int, now: datetime) -> dict[str, int]:  # type: ignore[no-untyped-def]
    tenant = default_tenant()
    kinds = categories(phones)
    with db.atomic():
        insert(User, [{"tenant": tenant.id, "extension": user_ext(i), "sip_username": user_ext(i),
                       "display_name": f"User {user_ext(i)}", "hotdesk_enabled": True}
                      for i in range(logged_in)])
        user_ids = [u.id for u in User.select(User.id).order_by(User.id)]
        devices = []
        for i in range(phones):
            kind = kinds.get(i, "ok")
            fetched = 3 if kind in ("ok", "mismatch", "unregistered", "rejected") else 2
            version = 3 if kind != "never" else 1
            if kind == "never":
                fetched = 0
            devices.append({
                "tenant": tenant.id, "mac": f"0015{i:08x}", "vendor": VENDORS[i % 6],
                "idle_extension": str(100000 + i), "idle_sip_username": str(100000 + i),
                "display_name": f"Desk {i}", "prov_token": token(i),
                "config_version": version, "fetched_version": fetched,
                "last_fetch_at": now - timedelta(hours=1) if fetched else None,
                "last_address": f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}:5060",
                "account_fingerprint": prints[i] if i < logged_in and fetched == version else ""})
        insert(Device, devices)
        device_ids = [d.id for d in Device.select(Device.id).order_by(Device.id)]
        sessions, outbox, audits, regs, fails = [], [], [], [], []
        cutoff_hours = 3  # the daily cut-off is set 3 h back (below)
        for i, did in enumerate(device_ids):
            kind = kinds.get(i, "ok")
            for h in range(history):
                start = now - timedelta(days=h + 1, hours=8)
                sessions.append({"tenant": tenant.id, "device": did,
                                 "user": user_ids[(i + h + 1) % logged_in], "started_at": start,
                                 "expires_at": None, "ended_at": start + timedelta(hours=8),
                                 "end_reason": "logout"})
            if i < logged_in:
                started = now - timedelta(hours=2)
                expires = None
                if i % 200 == 3:
                    expires = now - timedelta(minutes=1)  # past its maximum login time
                if i % 200 == 5:
                    started = now - timedelta(hours=cutoff_hours + 2)  # before the cut-off
                sessions.append({"tenant": tenant.id, "device": did, "user": user_ids[i],
                                 "started_at": started, "expires_at": expires,
                                 "ended_at": None, "end_reason": ""})
            account = user_ext(i) if i < logged_in else str(100000 + i)
            for version in range(1, 3 if kind != "never" else 1):
                sent = now - timedelta(days=3 - version)
                outbox.append(_row(tenant, did, account, version, "sent", sent))
            for h in range(history):
                audits.append({"tenant": tenant.id, "device": did, "action": "login",
                               "at": now - timedelta(days=h + 1),
                               "detail": '{"config_version": 2, "reason": "bench"}'})
            if kind == "in_flight":
                outbox.append(_row(tenant, did, account, 3, "pending", now - timedelta(seconds=5)))
            elif kind == "due":
                outbox.append(_row(tenant, did, account, 3, "sent", now - timedelta(minutes=10)))
            elif kind == "waiting":
                outbox.append(_row(tenant, did, account, 3, "sent", now - timedelta(seconds=30)))
            elif kind in ("exhausted", "gave_up"):
                for k in range(4):
                    outbox.append(_row(tenant, did, account, 3, "sent",
                                       now - timedelta(hours=8 - k),
                                       gave_up=kind == "gave_up" and k == 3))
            elif kind == "failed":
                outbox.append(_row(tenant, did, account, 3, "failed", now - timedelta(hours=1)))
            elif kind in ("ok", "mismatch", "unregistered", "rejected"):
                outbox.append(_row(tenant, did, account, 3, "sent", now - timedelta(hours=1)))
            if kind == "unregistered":
                continue
            registered_as = str(100000 + i) if kind == "mismatch" and i < logged_in else account
            if kind == "mismatch" and i >= logged_in:
                registered_as = "999999"
            regs.append({"switch": "asterisk", "account": registered_as, "device": did,
                         "contact_uri": f"sip:{registered_as}@10.0.{i // 256}.{i % 256}:5060",
                         "address": f"10.0.{i // 256}.{i % 256}:5060",
                         "registered_at": now - timedelta(hours=1),
                         "refreshed_at": now - timedelta(minutes=2),
                         "expires_at": now + timedelta(minutes=58)})
            if kind == "rejected":
                fails.append({"switch": "asterisk", "address": f"10.0.{i // 256}.{i % 256}:5060",
                              "account": account, "reason": "wrong password", "device": did,
                              "at": now - timedelta(minutes=1)})
        for model, rows in ((Session, sessions), (OutboxNotify, outbox), (AuditEvent, audits),
                            (Registration, regs), (RegistrationFailure, fails)):
            insert(model, rows)
        Heartbeat.create(component="registrations", node="bench", state="up", since=now,
                         updated_at=now + timedelta(hours=1))
    # Fixed-offset phones carry their clock state from the configs they were given.
    dst_resync(db, config, now)
    counts: dict[str, int] = defaultdict(int)
    for kind in kinds.values():
        counts[kind] += 1
    counts["outbox rows"] = len(outbox)
    counts["sessions"] = len(sessions)
    return dict(counts)


def _row(tenant, device_id: int, endpoint: str, version: int, status: str,  # type: ignore[no-untyped-def]
         at, gave_up: bool = False) -> dict:
    return {"tenant": tenant.id, "device": device_id, "endpoint": endpoint,
            "domain": tenant.sip_domain, "config_version": version, "status": status,
            "attempts": 0 if status == "pending" else 1, "next_attempt_at": at,
            "created_at": at, "sent_at": at if status == "sent" else None, "gave_up": gave_up}


JOBS = [(worker, "expire_sessions"), (worker, "daily_logout"),
        (reconcile, "release_expired_claims"), (worker, "dst_resync"),
        (reconcile, "reconcile"), (confirm, "check")]


class Timed:
    """Wraps the jobs a tick runs (and the database) to time each one and count statements."""

    def __init__(self, db, upkeep: SwitchUpkeep) -> None:  # type: ignore[no-untyped-def]
        self.seconds: dict[str, float] = defaultdict(float)
        self.statements = 0
        self.originals = [(owner, name, getattr(owner, name)) for owner, name in JOBS]
        for owner, name, fn in self.originals:
            setattr(owner, name, self._wrap(name, fn))
        self.upkeep = self._wrap("switch_upkeep", upkeep)
        self.db = db
        real = db.execute_sql

        def counted(*args, **kw):  # type: ignore[no-untyped-def]
            self.statements += 1
            return real(*args, **kw)

        db.execute_sql = counted

    def _wrap(self, name: str, fn):  # type: ignore[no-untyped-def]
        def timed(*args, **kw):  # type: ignore[no-untyped-def]
            started = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                self.seconds[name] += time.perf_counter() - started
        return timed

    def reset(self) -> None:
        self.seconds.clear()
        self.statements = 0

    def restore(self) -> None:
        for owner, name, fn in self.originals:
            setattr(owner, name, fn)
        del self.db.execute_sql


def run(name: str, url: str, args: argparse.Namespace, prints: list[str]) -> None:
    db = fresh(url)
    base = load_config(environ={})
    past = (utcnow() - timedelta(hours=3)).strftime("%H:%M")
    config = dataclasses.replace(
        base, policy=dataclasses.replace(base.policy, daily_logout_time=past))
    if args.reads_per_tick is not None:
        config = dataclasses.replace(config, switch=dataclasses.replace(
            config.switch, drift_reads_per_tick=args.reads_per_tick))
    logged_in = len(prints)
    started = time.perf_counter()
    now = utcnow()
    mix = seed(db, config, args.phones, logged_in, prints, args.history, now)
    seeded = time.perf_counter() - started
    print(f"\n{name}: {args.phones} phones, {logged_in} logged in, "
          f"{mix.pop('sessions')} sessions, {mix.pop('outbox rows')} outbox rows "
          f"(seeded in {seeded:.1f} s); mix: "
          + ", ".join(f"{k} {v}" for k, v in sorted(mix.items())))
    # The ticks run at the seeded moment (one second apart), whatever the time each takes,
    # so every run acts on the same phones: the first tick on the due ones, then none.
    clock = [now]
    service = HotdeskService(db, config, clock=lambda: clock[0])
    switch = None
    accounts: AccountReader = Accounts()
    if args.switch:
        switch = FakeSwitch(args.switch, [user_ext(i) for i in range(logged_in)],
                            default_tenant().sip_domain, args.sequential)
        accounts = switch.reader
        print(f"  accounts read from the {args.switch} fake (own process) over its protocol, "
              + ("one round trip per user" if args.sequential else "pipelined in one batch")
              + f", at most {config.switch.drift_reads_per_tick or 'all'} per tick")
    upkeep = SwitchUpkeep(db, config, view=accounts)  # type: ignore[arg-type]
    timed = Timed(db, upkeep)
    profiler = cProfile.Profile() if args.profile else None
    try:
        for n in range(1, args.ticks + 1):
            timed.reset()
            if profiler is not None and n == args.ticks:
                profiler.enable()
            begun = time.perf_counter()
            clock[0] = now + timedelta(seconds=n)
            result = worker.tick(service, config, now=clock[0], switch_upkeep=timed.upkeep)
            elapsed = time.perf_counter() - begun
            if profiler is not None and n == args.ticks:
                profiler.disable()
            label = "first tick " if n == 1 else f"steady #{n - 1:<3}"
            verdict = "ok" if elapsed < TARGET else "OVER TARGET"
            print(f"  {label} {elapsed:7.3f} s  (target < {TARGET:g} s per tick: {verdict})  "
                  f"{timed.statements:6d} statements  {result.summary()}")
            print("      " + "  ".join(f"{job} {s * 1000:.0f} ms"
                                       for job, s in sorted(timed.seconds.items(),
                                                            key=lambda kv: -kv[1])))
            if n == 1 and hasattr(upkeep, "fingerprints"):
                # What the first ticks do VERIFY_BUDGET at a time: every logged-in
                # user's slow fingerprint once, so the ticks below are a warm worker's.
                begun = time.perf_counter()
                drift.heal(db, config, accounts, memo=upkeep.fingerprints)
                print(f"  fingerprints of {logged_in} accounts verified once per worker start "
                      f"({drift.VERIFY_BUDGET} per tick): {time.perf_counter() - begun:.1f} s")
    finally:
        timed.restore()
        db.close()
        if switch is not None:
            switch.close()
    if profiler is not None:
        print(f"  profile of the last tick ({name}), top by cumulative time:")
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(18)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phones", type=int, default=10000)
    parser.add_argument("--logged-in", type=float, default=0.6,
                        help="share of the phones with a user logged in")
    parser.add_argument("--history", type=int, default=2,
                        help="ended sessions, older NOTIFYs and audit rows per phone")
    parser.add_argument("--ticks", type=int, default=4)
    parser.add_argument("--profile", action="store_true", help="profile the last tick")
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--switch", choices=["asterisk", "freeswitch"],
                        help="read the accounts from this switch's fake over its protocol")
    parser.add_argument("--sequential", action="store_true",
                        help="with --switch: one round trip per account (before batching)")
    parser.add_argument("--reads-per-tick", type=int,
                        help="[switch] drift_reads_per_tick (0 = all; default: the config's)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the jobs' warnings are expected here
    started = time.perf_counter()
    prints = fingerprints(max(int(args.phones * args.logged_in), 1))
    print(f"worker tick over {args.phones} phones (target < {TARGET:g} s per tick); "
          f"{len(prints)} account fingerprints computed in {time.perf_counter() - started:.1f} s")
    with databases() as dbs:
        for name, url in dbs:
            if args.sqlite_only and name != "SQLite":
                continue
            run(name, url, args, prints)


if __name__ == "__main__":
    main()
