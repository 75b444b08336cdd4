"""``hotdesk agi``: the Asterisk FastAGI + AMI process (``--workers N``: N of them)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses

from hotdesk.ops import metrics
from hotdesk.runtime import start
from hotdesk_cli.run_commands import add_worker_options, run_workers


def cmd_agi(args: argparse.Namespace) -> int:
    from hotdesk_agi.app import serve_forever

    cfg = args.cfg
    if args.listen:
        cfg = dataclasses.replace(cfg, agi=dataclasses.replace(cfg.agi, listen=args.listen))
    if args.workers > 1:
        return run_workers(args, "agi", cfg.agi.listen)
    if not args.no_metrics:
        metrics.serve_process_metrics(cfg.metrics.listen)
    asyncio.run(serve_forever(start(cfg), reuse_port=args.reuse_port))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("agi", help="run the Asterisk FastAGI server and AMI NOTIFY sender")
    p.add_argument("--listen", help="HOST:PORT (default: [agi] listen)")
    add_worker_options(p)
    p.set_defaults(handler=cmd_agi)
