"""``hotdesk esl`` (the FreeSWITCH Event Socket service) and ``hotdesk simulate-fs``."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from hotdesk.config import parse_listen
from hotdesk.runtime import start

log = logging.getLogger("hotdesk.esl")


def cmd_esl(args: argparse.Namespace) -> int:
    from esl_handlers.service import EslService

    runtime = start(args.cfg)
    service = EslService(runtime, listen=args.listen)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    service.start()
    try:
        stop.wait()
    finally:
        log.info("stopping")
        service.stop()
    return 0


def cmd_simulate_fs(args: argparse.Namespace) -> int:
    from esl_handlers.simulate import simulate

    address = parse_listen(args.listen or args.cfg.esl.listen)
    if address[0] in ("0.0.0.0", "::"):
        address = ("127.0.0.1", address[1])
    result = simulate(address, args.action, args.endpoint, args.extension or "",
                      pins=args.pin or [], domain=args.domain or args.cfg.tenant.default_domain,
                      source=args.source)
    print(f"result: {result or '(none)'}")
    return 0 if result in ("ok", "logged_out") else 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("esl", help="FreeSWITCH: outbound Event Socket server + NOTIFY sender")
    p.add_argument("--listen", help="HOST:PORT (default: [esl] listen)")
    p.set_defaults(handler=cmd_esl)

    p = sub.add_parser("simulate-fs",
                       help="play FreeSWITCH's side of a *70/*71 call against 'hotdesk esl'")
    p.add_argument("action", choices=["login", "logout"])
    p.add_argument("--endpoint", required=True, help="SIP user the phone is registered as")
    p.add_argument("--extension", help="extension to log in (login only)")
    p.add_argument("--pin", action="append",
                   help="digits keyed at each PIN prompt (repeat for several tries)")
    p.add_argument("--domain", help="SIP domain (default: [tenant] default_domain)")
    p.add_argument("--source", default="127.0.0.1:5060", help="phone IP:PORT")
    p.add_argument("--listen", help="ESL server HOST:PORT (default: [esl] listen)")
    p.set_defaults(handler=cmd_simulate_fs)
