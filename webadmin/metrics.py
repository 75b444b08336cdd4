"""``GET /metrics`` of ``hotdesk web``: the database-derived gauges plus this process's own.

Phones must reach this port for their configs, and a reverse proxy makes every client
look like loopback, so a client address proves nothing here: scrapers must send
``Authorization: Bearer <[metrics] token>``; ``[metrics] allow_networks``, when set,
further limits where they may come from. Without a token configured the page is off
(403 saying so). The figures are not secret, but they describe the fleet and each
scrape costs a few queries.
"""

from __future__ import annotations

import hmac
import ipaddress

from flask import Blueprint, Response, abort, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from hotdesk.ops.metrics import database_registry
from hotdesk.runtime import Runtime

bp = Blueprint("metrics", __name__)

NO_TOKEN = ("/metrics of hotdesk web needs [metrics] token (scrapers send it as a bearer "
            "token)")


def allowed(remote: str, auth_header: str, token: str, networks: str) -> bool:
    """The configured token, and (when networks are set) a client inside them."""
    if not token or not auth_header.startswith("Bearer "):
        return False
    if not hmac.compare_digest(auth_header[7:].strip().encode(), token.encode()):
        return False
    nets = [n.strip() for n in networks.split(",") if n.strip()]
    if not nets:
        return True
    try:
        addr = ipaddress.ip_address(remote)
    except ValueError:
        return False
    return any(addr in ipaddress.ip_network(net, strict=False) for net in nets)


@bp.get("/metrics")
def metrics() -> Response:
    runtime: Runtime = current_app.config["HOTDESK"]
    cfg = runtime.config.metrics
    if not cfg.token:
        abort(403, NO_TOKEN)
    if not allowed(request.remote_addr or "", request.headers.get("Authorization", ""),
                   cfg.token, cfg.allow_networks):
        abort(403)
    registry = current_app.extensions.setdefault("hotdesk_metrics_registry",
                                                 database_registry())
    body = generate_latest(registry) + generate_latest(REGISTRY)
    return Response(body, content_type=CONTENT_TYPE_LATEST)
