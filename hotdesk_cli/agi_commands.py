"""``hotdesk agi`` (the Asterisk FastAGI + AMI process) and ``hotdesk simulate``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys

from hotdesk.inventory import InventoryError, find_device
from hotdesk.runtime import start

SWITCHES = ("asterisk",)


def cmd_agi(args: argparse.Namespace) -> int:
    from hotdesk_agi.app import serve_forever

    cfg = args.cfg
    if args.listen:
        cfg = dataclasses.replace(cfg, agi=dataclasses.replace(cfg.agi, listen=args.listen))
    asyncio.run(serve_forever(start(cfg)))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    start(args.cfg)
    try:
        device = find_device(args.device)
    except InventoryError as exc:
        print(f"hotdesk: {exc}", file=sys.stderr)
        return 1
    if args.switch == "asterisk":
        from hotdesk_agi.simulate_cli import simulate
        try:
            transcript = simulate(args.cfg, device, args.feature,
                                  extension=getattr(args, "extension", ""),
                                  pin=getattr(args, "pin", ""), source=args.source or "")
        except OSError as exc:
            print(f"hotdesk: cannot reach the FastAGI server at {args.cfg.agi.listen}: {exc}",
                  file=sys.stderr)
            return 1
        result = transcript.variables.get("HOTDESK_RESULT")
        return 0 if result in ("ok", "logged_out") else 3
    print(f"hotdesk: --switch {args.switch} is not supported", file=sys.stderr)
    return 2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("agi", help="run the Asterisk FastAGI server and AMI NOTIFY sender")
    p.add_argument("--listen", help="HOST:PORT (default: [agi] listen)")
    p.set_defaults(handler=cmd_agi)

    sim = sub.add_parser("simulate", help="place a test call against the running server")
    sim_sub = sim.add_subparsers(dest="feature", required=True)
    for feature in ("login", "logout"):
        s = sim_sub.add_parser(feature, help=f"simulate *7{'0' if feature == 'login' else '1'}")
        s.add_argument("--device", required=True, help="MAC of the hot-desking phone")
        if feature == "login":
            s.add_argument("--extension", required=True)
            s.add_argument("--pin", required=True, help="keyed at every PIN prompt")
        s.add_argument("--source", help="phone ip:port (default: last seen address)")
        s.add_argument("--switch", choices=SWITCHES, default="asterisk")
        s.set_defaults(handler=cmd_simulate)
