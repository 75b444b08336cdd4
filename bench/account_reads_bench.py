"""The worker's account reads against a real switch: one batch vs one round trip each.

Run: .venv/bin/python bench/account_reads_bench.py --ami HOST:PORT:USER:SECRET
         [--esl HOST:PORT:PASSWORD --domain DOMAIN] --accounts 101,102,8001 [--reads 6000]
Reads ``--reads`` accounts (the given ones over and over, as a fleet of that many
logged-in users would) through the worker's own readers: pipelined in one batch
(``read_many``, what a tick does) and, for ``--sequential-reads`` of them, one round trip
each (the worker before batching, scaled to the fleet), and a batch of ``--per-tick``
(``[switch] drift_reads_per_tick``, what a bounded tick reads). Prints each beside the
target "< 1 s per tick" (the whole tick, of which these reads are only a part).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hotdesk.switch.accounts import AccountError, Credentials  # noqa: E402

TARGET = 1.0  # seconds per worker tick


def views(args: argparse.Namespace) -> list[tuple[str, object, str]]:
    """(switch, view, domain) for each switch named on the command line."""
    out: list[tuple[str, object, str]] = []
    if args.ami:
        from hotdesk.settings import AmiConfig
        from hotdesk_agi.ami_sync import BlockingAmi
        from hotdesk_agi.switch_view import AsteriskView

        host, port, user, secret = args.ami.split(":", 3)
        out.append(("Asterisk (AMI Getvar)", AsteriskView(BlockingAmi(AmiConfig(
            host=host, port=int(port), username=user, secret=secret))), "default"))
    if args.esl:
        from esl_handlers.inbound import InboundConnection
        from esl_handlers.switch_view import FreeswitchView

        host, port, password = args.esl.split(":", 2)
        inbound = InboundConnection(host, int(port), password)
        inbound.start()
        if not inbound.wait_connected(10):
            raise SystemExit(f"Event Socket {host}:{port}: not connected")
        out.append(("FreeSWITCH (Event Socket api user_data)", FreeswitchView(inbound),
                    args.domain))
    return out


def verdict(seconds: float) -> str:
    return "ok" if seconds < TARGET else "OVER TARGET"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ami", help="HOST:PORT:USER:SECRET of a real Asterisk")
    parser.add_argument("--esl", help="HOST:PORT:PASSWORD of a real FreeSWITCH")
    parser.add_argument("--domain", default="127.0.0.1", help="FreeSWITCH directory domain")
    parser.add_argument("--accounts", required=True,
                        help="comma-separated accounts that exist on the switch")
    parser.add_argument("--reads", type=int, default=6000,
                        help="accounts per tick (logged-in users of the fleet)")
    parser.add_argument("--sequential-reads", type=int, default=600,
                        help="how many to time one round trip each (scaled to --reads)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--per-tick", type=int, default=1000,
                        help="[switch] drift_reads_per_tick to time (default 1000)")
    args = parser.parse_args()
    names = args.accounts.split(",")
    for switch, view, domain in views(args):
        keys = [(names[i % len(names)], domain) for i in range(args.reads)]
        print(f"{switch}: {args.reads} account reads per tick (target < {TARGET:g} s per "
              "whole tick)")
        for n in range(args.repeat):
            started = time.perf_counter()
            results = view.read_many(keys)  # type: ignore[attr-defined]
            elapsed = time.perf_counter() - started
            bad = sum(not isinstance(r, Credentials) for r in results)
            print(f"  batched     #{n + 1}  {elapsed:7.3f} s  ({elapsed / len(keys) * 1e6:5.0f} "
                  f"us per account; {verdict(elapsed)}){f'  {bad} FAILED' if bad else ''}")
        started = time.perf_counter()
        view.read_many(keys[:args.per_tick])  # type: ignore[attr-defined]
        elapsed = time.perf_counter() - started
        print(f"  bounded     {elapsed:7.3f} s  ({args.per_tick} per tick, drift_reads_per_tick;"
              f" all {args.reads} within {-(-args.reads // args.per_tick)} ticks; "
              f"{verdict(elapsed)})")
        started = time.perf_counter()
        for account, dom in keys[:args.sequential_reads]:
            try:
                view.read(account, dom)  # type: ignore[attr-defined]
            except AccountError as exc:
                print(f"  {account}: {exc}")
        per = (time.perf_counter() - started) / args.sequential_reads
        print(f"  one by one  {per * args.reads:7.3f} s  ({per * 1e6:5.0f} us per account, "
              f"{args.sequential_reads} timed, scaled to {args.reads}; "
              f"{verdict(per * args.reads)})")
        view.close()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
