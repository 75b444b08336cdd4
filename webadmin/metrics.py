"""``GET /metrics`` of ``hotdesk web``: the database-derived gauges plus this process's own.

Scrapers authenticate with ``Authorization: Bearer <[metrics] token>`` or come from an
``[metrics] allow_networks`` address; with neither configured only loopback may scrape.
The figures reveal nothing secret, but the page costs a few queries per scrape.
"""

from __future__ import annotations

import hmac
import ipaddress

from flask import Blueprint, Response, abort, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from hotdesk.ops.metrics import database_registry
from hotdesk.runtime import Runtime

bp = Blueprint("metrics", __name__)

_LOOPBACK = ("127.0.0.0/8", "::1/128")


def allowed(remote: str, auth_header: str, token: str, networks: str) -> bool:
    """Token match, or a client address inside the allowed networks."""
    if token and auth_header.startswith("Bearer "):
        if hmac.compare_digest(auth_header[7:].strip().encode(), token.encode()):
            return True
    nets = [n.strip() for n in networks.split(",") if n.strip()]
    if not nets and not token:
        nets = list(_LOOPBACK)
    try:
        addr = ipaddress.ip_address(remote)
    except ValueError:
        return False
    return any(addr in ipaddress.ip_network(net, strict=False) for net in nets)


@bp.get("/metrics")
def metrics() -> Response:
    runtime: Runtime = current_app.config["HOTDESK"]
    cfg = runtime.config.metrics
    if not allowed(request.remote_addr or "", request.headers.get("Authorization", ""),
                   cfg.token, cfg.allow_networks):
        abort(403)
    registry = current_app.extensions.setdefault("hotdesk_metrics_registry",
                                                 database_registry())
    body = generate_latest(registry) + generate_latest(REGISTRY)
    return Response(body, content_type=CONTENT_TYPE_LATEST)
