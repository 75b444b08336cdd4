"""``hotdesk web``: the admin pages, REST API and provisioning server (uvicorn; why in
webadmin/server.py), over TLS when ``[web] tls_certfile`` is set."""

from __future__ import annotations

import argparse
import logging
import sys

from hotdesk import tls
from hotdesk.runtime import start
from hotdesk.settings import parse_listen

log = logging.getLogger(__name__)


def cmd_web(args: argparse.Namespace) -> int:
    from webadmin.app import create_app
    from webadmin.server import run

    rt = start(args.cfg)
    app = create_app(rt)
    # Imports a stopped web process left half done continue here (durable jobs).
    app.config["HOTDESK_JOBS"].resume_in_background(rt)
    listen = args.listen or args.cfg.web.listen
    if args.cfg.web.debug:
        host, port = parse_listen(listen)
        log.warning("[web] debug is on: Flask's development server, never in production")
        app.run(host=host, port=port, debug=True, use_reloader=False)
        return 0
    try:
        return run(app, args.cfg.web, listen, args.threads)
    except tls.TlsError as exc:
        print(f"hotdesk web: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"hotdesk web: {exc.strerror}", file=sys.stderr)
        return 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("web", help="serve the web admin, REST API and provisioning files")
    p.add_argument("--listen", help="HOST:PORT (default: [web] listen)")
    p.add_argument("--threads", type=int, default=8,
                   help="threads running requests (open connections need none)")
    p.set_defaults(handler=cmd_web)
