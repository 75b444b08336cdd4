"""What follows saving a phone outside the database: the PnP URL push and the vendors'
redirect services (RPS). Each returns a :class:`Step` (never raises): an external
service's failure is reported to the admin, it does not undo the saved phone.

``hotdesk_pnp`` (the SIP side of PnP) is imported when used, so an installation
without it reports "not available" instead of failing.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from hotdesk.provisioning import rps
from hotdesk.provisioning.discovery import phone_address
from hotdesk.settings import Config
from hotdesk.store.models import Device

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    """One thing done after a change. ``ok`` None = skipped or not applicable."""

    name: str  # check-sync | pnp | rps
    ok: bool | None
    message: str  # one sentence, starting with what was tried ("PnP URL push: …")


def _guarded(name: str, what: str, device: Device, run: Callable[[], str]) -> Step:
    try:
        return Step(name, True, f"{what}: {run()}")
    except rps.RpsError as exc:
        return Step(name, False, f"{what} failed: {exc}")
    except Exception as exc:  # an external service: its failure must not undo the save
        log.exception("%s for phone %s failed", what, device.mac)
        return Step(name, False, f"{what} failed: {type(exc).__name__}: {exc}")


def push_pnp(config: Config, device: Device) -> Step:
    """PnP: send the provisioning URL now to a phone that has asked for it before."""
    what = "PnP URL push"
    if not phone_address(device.mac):
        return Step("pnp", None, f"{what}: phone not yet seen; it gets the URL when it asks")
    try:
        module = importlib.import_module("hotdesk_pnp.push")
        push, succeeded = module.push_provisioning_url, module.push_succeeded
    except (ImportError, AttributeError):
        return Step("pnp", None, f"{what}: not available in this installation")
    step = _guarded("pnp", what, device, lambda: push(config, device))
    if step.ok and not succeeded(step.message.removeprefix(f"{what}: ")):
        return Step("pnp", False, step.message)  # sent, but the phone did not accept it
    return step


def save_to_rps(config: Config, device: Device, actor: str) -> Step:
    what = "Save to RPS"
    if not rps.has_service(config, device.vendor):
        return Step("rps", None, f"{what}: no redirect service configured for "
                                 f"{device.vendor}; register the URL yourself or set it up "
                                 "in [rps] and run 'hotdesk rps register'")
    return _guarded("rps", what, device, lambda: rps.save_to_rps(config, device, actor=actor))


def remove_from_rps(config: Config, device: Device, actor: str) -> Step:
    what = "Remove from RPS"
    if not rps.has_service(config, device.vendor):
        return Step("rps", None, f"{what}: no redirect service configured for "
                                 f"{device.vendor}; remove the MAC there by hand")
    return _guarded("rps", what, device,
                    lambda: rps.remove_from_rps(config, device, actor=actor))
