"""The one place the web admin reaches optional parts: PnP URL push, the vendors' redirect
services (RPS) and the switch connection status. Each is imported lazily, so a missing
part shows as "not available" instead of breaking the pages."""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass

from hotdesk import reports
from hotdesk.config import Config
from hotdesk.models import Device

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


def _call(what: str, module: str, name: str, config: Config, device: Device) -> IntegrationResult:
    func = _function(module, name)
    if func is None:
        return IntegrationResult(None, f"{what}: not available in this installation")
    rps_error = _function("hotdesk.rps", "RpsError")
    try:
        return IntegrationResult(True, f"{what}: {func(config, device)}")
    except Exception as exc:  # an external service: its failure must not break the page
        if rps_error is not None and isinstance(exc, rps_error):
            return IntegrationResult(False, f"{what} failed: {exc}")
        log.exception("%s for phone %s failed", what, device.mac)
        return IntegrationResult(False, f"{what} failed: {type(exc).__name__}: {exc}")


def push_provisioning_url(config: Config, device: Device) -> IntegrationResult:
    """PnP: send the provisioning URL to a phone that asked for it."""
    return _call("PnP URL push", "hotdesk_pnp", "push_provisioning_url", config, device)


def save_to_rps(config: Config, device: Device) -> IntegrationResult:
    return _call("Save to RPS", "hotdesk.rps", "save_to_rps", config, device)


def remove_from_rps(config: Config, device: Device) -> IntegrationResult:
    return _call("Remove from RPS", "hotdesk.rps", "remove_from_rps", config, device)


def switch_status(config: Config, scope: reports.Scope) -> dict[str, object]:
    """Switch connection as far as the web process can tell: the outbox state, plus a
    heartbeat if an adapter provides ``hotdesk.heartbeat.switch_status(config)``."""
    status: dict[str, object] = {"switch": config.switch.type, "status": "unknown",
                                 "detail": "no heartbeat from the switch adapter"}
    heartbeat = _function("hotdesk.heartbeat", "switch_status")
    if heartbeat is not None:
        try:
            status.update(heartbeat(config))
        except Exception as exc:  # a broken heartbeat reader must not break the page
            status["detail"] = f"heartbeat unreadable: {exc}"
    status.update(reports.outbox_summary(scope))
    return status
