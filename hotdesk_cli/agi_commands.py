"""``hotdesk agi``: the Asterisk FastAGI + AMI process."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses

from hotdesk.ops import metrics
from hotdesk.runtime import start


def cmd_agi(args: argparse.Namespace) -> int:
    from hotdesk_agi.app import serve_forever

    cfg = args.cfg
    if args.listen:
        cfg = dataclasses.replace(cfg, agi=dataclasses.replace(cfg.agi, listen=args.listen))
    metrics.serve_process_metrics(cfg.metrics.listen)
    asyncio.run(serve_forever(start(cfg)))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("agi", help="run the Asterisk FastAGI server and AMI NOTIFY sender")
    p.add_argument("--listen", help="HOST:PORT (default: [agi] listen)")
    p.set_defaults(handler=cmd_agi)

