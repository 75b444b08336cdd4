"""``hotdesk esl``: the FreeSWITCH Event Socket service."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from hotdesk.ops import metrics
from hotdesk.runtime import start
from hotdesk_cli.run_commands import add_worker_options, run_workers

log = logging.getLogger("hotdesk.esl")


def cmd_esl(args: argparse.Namespace) -> int:
    from esl_handlers.service import EslService

    if args.workers > 1:
        return run_workers(args, "esl", args.listen or args.cfg.esl.listen)
    runtime = start(args.cfg)
    if not args.no_metrics:
        metrics.serve_process_metrics(runtime.config.metrics.listen)
    service = EslService(runtime, listen=args.listen, reuse_port=args.reuse_port)
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


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("esl", help="FreeSWITCH: outbound Event Socket server + NOTIFY sender")
    p.add_argument("--listen", help="HOST:PORT (default: [esl] listen)")
    add_worker_options(p)
    p.set_defaults(handler=cmd_esl)

