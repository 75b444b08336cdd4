"""``hotdesk prov-serve``: serve phone configs from a lean asyncio server on its own port.

Optional: ``hotdesk web`` serves the same URLs with the same checks. Use this one when
many phones poll (point ``[provisioning] base_url`` at its port).
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import sys
import time

from hotdesk import tls
from hotdesk.provisioning.serving import AuditThrottle, ConfigServer
from hotdesk.runtime import start
from hotdesk.settings import parse_listen
from hotdesk.store.db import close_before_fork
from hotdesk_prov.server import listen_socket, prefork, run_worker, tls_files

log = logging.getLogger("hotdesk.prov")


def cmd_prov_serve(args: argparse.Namespace) -> int:
    config = args.cfg
    runtime = start(config)  # refuses an out-of-date schema before anything listens
    close_before_fork(runtime.db)  # each worker opens its own connections after the fork
    host, port = parse_listen(args.listen or config.provisioning.listen)
    workers = args.workers if args.workers is not None else config.provisioning.workers
    workers = workers or os.cpu_count() or 1
    files = tls_files(config)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the workers handle it: never fatal
    if files.enabled:
        try:  # refuse unusable files before forking; each worker loads its own context
            tls.server_context(files)
        except tls.TlsError as exc:
            print(f"hotdesk prov-serve: {exc}", file=sys.stderr)
            return 2
        tls.raise_open_files_limit(65536)
    try:
        sock = listen_socket(host, port)
    except OSError as exc:
        print(f"hotdesk: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return 1
    # One digest nonce key for all workers: a nonce issued by one is valid at the others.
    nonce_key = secrets.token_bytes(32)

    def make_server() -> ConfigServer:
        server = ConfigServer(config, runtime.db, throttle=AuditThrottle(), nonce_key=nonce_key)
        if not args.no_preload:
            began = time.monotonic()
            files = server.cache.preload()
            log.info("prov-serve worker %d: %d files preloaded in %.1f s", os.getpid(), files,
                     time.monotonic() - began)
        return server

    bound_host, bound_port = sock.getsockname()[:2]
    mode = ("TLS, client certificates required" if files.client_ca
            else "TLS" if files.enabled else "plain HTTP")
    log.info("prov-serve listening on %s:%d (%d worker%s, base_url %s, %s)", bound_host,
             bound_port, workers, "s" if workers != 1 else "", config.provisioning.base_url,
             mode)
    if workers == 1:
        run_worker(make_server, sock, args.loop)
        return 0
    return prefork(make_server, sock, workers, args.loop)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prov-serve", help="serve phone configs (lean server, own port)")
    p.add_argument("--listen", help="HOST:PORT (default: [provisioning] listen)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: [provisioning] workers; 0 = one per CPU)")
    p.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto",
                   help="event loop: uvloop when installed (auto), or force one")
    p.add_argument("--no-preload", action="store_true",
                   help="do not render every device's files when a worker starts")
    p.set_defaults(handler=cmd_prov_serve)
