"""The switch connection status from the adapters' heartbeats, for the web admin. (The PnP
URL push and the vendors' redirect services are steps of hotdesk.admin.usecases.)"""

from __future__ import annotations

import logging
from datetime import datetime

from hotdesk.admin import reports
from hotdesk.ops import health
from hotdesk.ops.status import STALE_SECONDS
from hotdesk.settings import Config
from hotdesk.store.models import utcnow

log = logging.getLogger(__name__)


# The heartbeat component that carries each switch's control connection.
SWITCH_COMPONENTS = {"asterisk": "ami", "freeswitch": "esl-inbound"}


def switch_status(config: Config, scope: reports.Scope,
                  now: datetime | None = None) -> dict[str, object]:
    """The switch connection as the adapters report it (``hotdesk.ops.health``), plus the outbox.

    ``status`` is ``connected`` when at least one node holds the connection, ``down``
    when every node reports it down, ``stale`` when the only reports are too old to
    trust (the process may have died without saying so), ``unknown`` with no report.
    ``connections`` lists every node's AMI/ESL state for the settings page.
    """
    now = now or utcnow()
    component = SWITCH_COMPONENTS.get(config.switch.type, "")
    status: dict[str, object] = {"switch": config.switch.type, "status": "unknown",
                                 "detail": "no heartbeat from the switch adapter",
                                 "since": None, "connections": []}
    try:
        # Only the configured switch's connection: an idle Event Socket client on an
        # Asterisk install is not "ESL down".
        beats = [b for b in health.read_all() if b.component == component]
    except Exception as exc:  # a broken heartbeat reader must not break the page
        log.warning("cannot read heartbeats: %s", exc)
        status["detail"] = f"heartbeat unreadable: {exc}"
        beats = []
    connections = []
    for b in beats:
        stale = b.age(now).total_seconds() > STALE_SECONDS
        connections.append({"component": b.component, "node": b.node,
                            "state": "stale" if stale and b.state == "up" else b.state,
                            "since": b.since, "updated_at": b.updated_at, "detail": b.detail})
    status["connections"] = connections
    mine = [c for c in connections if c["component"] == component]
    if mine:
        best = (next((c for c in mine if c["state"] == "up"), None)
                or next((c for c in mine if c["state"] == "down"), None) or mine[0])
        status["status"] = "connected" if best["state"] == "up" else best["state"]
        status["since"] = best["since"]
        status["detail"] = f"{best['component']} on {best['node']}: {best['detail']}"
    status.update(reports.outbox_summary(scope))
    return status
