"""``hotdesk run``: every hotdesk service in one command, each in its own process.

Separate processes keep asyncio (FastAGI), the Event Socket threads and the WSGI server
apart, and are what a multi-node deployment runs anyway. A child that dies is
restarted with backoff; SIGINT/SIGTERM stop them all.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from hotdesk.runtime import start

log = logging.getLogger("hotdesk.run")

DEFAULT_COMPONENTS = ("agi", "esl", "web", "worker")
# Component name -> its sub-command. PnP is opt-in: it binds UDP 5060 on the multicast group;
# prov (the lean config server) is opt-in: hotdesk web serves the same URLs.
COMPONENT_ARGS = {"agi": ["agi"], "esl": ["esl"], "web": ["web"], "worker": ["worker"],
                  "pnp": ["pnp", "listen"], "prov": ["prov-serve"]}


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default=0.0)


def _spawn(child: Child) -> None:
    child.proc = subprocess.Popen(child.argv)
    child.started_at = time.monotonic()
    log.info("started %s (pid %d)", child.name, child.proc.pid)


def supervise(children: list[Child], stop: list[bool], poll: float = 0.5) -> None:
    """Keep every child running until ``stop[0]`` turns true."""
    for child in children:
        _spawn(child)
    while not stop[0]:
        now = time.monotonic()
        for child in children:
            if child.proc is not None and child.proc.poll() is not None:
                code = child.proc.returncode
                # A child that ran a while before dying starts again at once.
                if now - child.started_at > 60:
                    child.restarts = 0
                delay = min(2 ** child.restarts, 30)
                log.warning("%s exited with status %s; restarting in %ds", child.name, code,
                            delay)
                child.proc = None
                child.restarts += 1
                child.next_start = now + delay
            elif child.proc is None and now >= child.next_start:
                _spawn(child)
        time.sleep(poll)
    for child in children:
        if child.proc is not None and child.proc.poll() is None:
            child.proc.terminate()
    deadline = time.monotonic() + 10
    for child in children:
        if child.proc is not None:
            try:
                child.proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                child.proc.kill()


def run_workers(args: argparse.Namespace, command: str, listen: str) -> int:
    """``hotdesk agi|esl --workers N``: N processes sharing one listen port (SO_REUSEPORT),
    supervised like ``hotdesk run``; only the first serves the process metrics."""
    base = [sys.executable, "-m", "hotdesk_cli"] + (["--config", args.config]
                                                     if args.config else [])
    children = []
    for n in range(args.workers):
        argv = base + [command, "--listen", listen, "--reuse-port"]
        if n:
            argv = [*argv, "--no-metrics"]
        children.append(Child(f"{command}-{n + 1}", argv))
    stop = [False]

    def on_signal(signum: int, _frame: object) -> None:
        stop[0] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    log.info("hotdesk %s: %d workers on %s", command, args.workers, listen)
    supervise(children, stop)
    return 0


def add_worker_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, default=1,
                   help="processes sharing the listen port (default 1)")
    p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--no-metrics", action="store_true", help=argparse.SUPPRESS)


def cmd_run(args: argparse.Namespace) -> int:
    start(args.cfg, migrate=True)
    base = [sys.executable, "-m", "hotdesk_cli"]
    if args.config:
        base += ["--config", args.config]
    names = [n.strip() for n in args.components.split(",") if n.strip()]
    unknown = [n for n in names if n not in COMPONENT_ARGS]
    if unknown:
        print(f"hotdesk run: unknown component(s) {', '.join(unknown)}; "
              f"choose from {', '.join(COMPONENT_ARGS)}", file=sys.stderr)
        return 2
    children = [Child(name, base + COMPONENT_ARGS[name]) for name in names]
    stop = [False]

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping %s", signum, ", ".join(names))
        stop[0] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    log.info("hotdesk run: %s (pid %d)", ", ".join(names), os.getpid())
    supervise(children, stop)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run every hotdesk service (upgrades the schema first)")
    p.add_argument("--components", default=",".join(DEFAULT_COMPONENTS),
                   help=f"comma-separated from {', '.join(COMPONENT_ARGS)} "
                        f"(default: {','.join(DEFAULT_COMPONENTS)})")
    p.set_defaults(handler=cmd_run)
