"""``hotdesk worker`` and ``hotdesk status``: background jobs and the one-screen overview."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from hotdesk.notify.drain import make_sender, run_drain
from hotdesk.notify.pacing import PacerLoop
from hotdesk.ops import metrics, status
from hotdesk.ops.worker import run_worker
from hotdesk.runtime import start

log = logging.getLogger("hotdesk.ops.worker")


def _stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM (systemd stop) and SIGINT end the loop after the current step."""
    def handler(signum: int, frame: object) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def cmd_worker(args: argparse.Namespace) -> int:
    rt = start(args.cfg)
    name = args.sender if args.sender is not None else rt.config.notify.sender
    try:
        sender = make_sender(name, rt.config)
    except ValueError as exc:
        print(f"hotdesk: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    _stop_on_signals(stop)
    metrics.serve_process_metrics(rt.config.metrics.listen)
    if args.drain_only:
        if sender is None:
            print("hotdesk: --drain-only needs a sender ([notify] sender or --sender)",
                  file=sys.stderr)
            return 2
        log.info("draining the outbox with sender %r", name)
        totals = run_drain(sender, rt.config, stop)
        log.info("drain stopped after %d rounds: %s", totals.rounds, totals.counts)
        return 0
    log.info("worker started (interval %.0fs, sender %s)", rt.config.worker.interval_seconds,
             name or "none")
    from hotdesk.switch.upkeep import SwitchUpkeep

    # Paced pushes: campaign phones join the outbox at [notify] push_rate.
    pacer = None if args.once else PacerLoop(rt.config)
    if pacer is not None:
        pacer.start()
    try:
        ticks = run_worker(rt.service, rt.config, stop, sender=sender,
                           max_ticks=1 if args.once else None,
                           switch_upkeep=SwitchUpkeep(rt.db, rt.config))
    finally:
        if pacer is not None:
            pacer.stop()
    log.info("worker stopped after %d tick(s)", ticks)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    start(args.cfg)
    sys.stdout.write(status.render(status.collect()))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="auto-logout, NOTIFY reconciliation, optional drain")
    p.add_argument("--once", action="store_true", help="run one tick and exit")
    p.add_argument("--sender", help="override [notify] sender (none, log, module:factory)")
    p.add_argument("--drain-only", action="store_true",
                   help="only drain the outbox (no auto-logout or reconciliation)")
    p.set_defaults(handler=cmd_worker)
    p = sub.add_parser("status", help="connections, sessions, outbox, phones, last worker run")
    p.set_defaults(handler=cmd_status)
