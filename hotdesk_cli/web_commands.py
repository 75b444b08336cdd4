"""``hotdesk web``: the admin pages, REST API and provisioning server over waitress."""

from __future__ import annotations

import argparse
import logging

from hotdesk.runtime import start
from hotdesk.settings import parse_listen

log = logging.getLogger(__name__)


def cmd_web(args: argparse.Namespace) -> int:
    from webadmin.app import create_app

    rt = start(args.cfg)
    app = create_app(rt)
    # Imports a stopped web process left half done continue here (durable jobs).
    app.config["HOTDESK_JOBS"].resume_in_background(rt)
    host, port = parse_listen(args.listen or args.cfg.web.listen)
    if args.cfg.web.debug:
        log.warning("[web] debug is on: Flask's development server, never in production")
        app.run(host=host, port=port, debug=True, use_reloader=False)
        return 0
    import waitress

    log.info("hotdesk web listening on http://%s:%d/", host, port)
    waitress.serve(app, host=host, port=port, threads=args.threads, ident="hotdesk",
                   clear_untrusted_proxy_headers=True)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("web", help="serve the web admin, REST API and provisioning files")
    p.add_argument("--listen", help="HOST:PORT (default: [web] listen)")
    p.add_argument("--threads", type=int, default=8, help="waitress worker threads")
    p.set_defaults(handler=cmd_web)
