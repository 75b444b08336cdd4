"""The one place the web admin reaches optional parts: PnP URL push, the vendors' redirect
services (RPS), imported lazily so a missing part shows as "not available" instead of
breaking the pages, and the switch connection status from the adapters' heartbeats."""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from datetime import datetime

from hotdesk.admin import reports
from hotdesk.ops import health
from hotdesk.ops.status import STALE_SECONDS
from hotdesk.settings import Config
from hotdesk.store.models import Device, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IntegrationResult:
    ok: bool | None  # None = not available in this install
    message: str


def _function(module: str, name: str):  # type: ignore[no-untyped-def]
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def _call(what: str, module: str, name: str, config: Config, device: Device,
          **kwargs: str) -> IntegrationResult:
    func = _function(module, name)
    if func is None:
        return IntegrationResult(None, f"{what}: not available in this installation")
    rps_error = _function("hotdesk.provisioning.rps", "RpsError")
    try:
        return IntegrationResult(True, f"{what}: {func(config, device, **kwargs)}")
    except Exception as exc:  # an external service: its failure must not break the page
        if rps_error is not None and isinstance(exc, rps_error):
            return IntegrationResult(False, f"{what} failed: {exc}")
        log.exception("%s for phone %s failed", what, device.mac)
        return IntegrationResult(False, f"{what} failed: {type(exc).__name__}: {exc}")


def push_provisioning_url(config: Config, device: Device) -> IntegrationResult:
    """PnP: send the provisioning URL to a phone that asked for it."""
    return _call("PnP URL push", "hotdesk_pnp", "push_provisioning_url", config, device)


def save_to_rps(config: Config, device: Device, actor: str) -> IntegrationResult:
    """``actor`` ("admin:<name>") goes into the audit row the RPS write leaves."""
    return _call("Save to RPS", "hotdesk.provisioning.rps", "save_to_rps", config, device,
                 actor=actor)


def remove_from_rps(config: Config, device: Device, actor: str) -> IntegrationResult:
    return _call("Remove from RPS", "hotdesk.provisioning.rps", "remove_from_rps", config, device,
                 actor=actor)


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
        beats = [b for b in health.read_all() if b.component in SWITCH_COMPONENTS.values()]
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
