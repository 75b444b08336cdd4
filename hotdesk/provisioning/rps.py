"""RPS: tell a phone vendor's redirect service where a phone's configuration lives.

A factory-fresh phone asks its vendor's redirect service "who provisions MAC x?" at
power-on and gets the provisioning URL registered here. Which service a vendor uses,
and its account, come from ``[rps]``; credentials stay in the config file and never
appear in a message or log line. Errors are :class:`RpsError` whose message carries the
service's own words.
"""

from __future__ import annotations

import logging

from hotdesk.mac import format_mac
from hotdesk.provisioning.render import device_url
from hotdesk.provisioning.rps_clients.base import RpsClient, RpsError
from hotdesk.provisioning.rps_clients.sraps import SrapsClient
from hotdesk.provisioning.rps_clients.xmlrpc_redirect import XmlRpcRedirectClient
from hotdesk.settings import Config, RpsConfig
from hotdesk.store import audit
from hotdesk.store.models import Device

__all__ = ["RpsClient", "RpsError", "client_for", "has_service", "remove_from_rps",
           "save_to_rps", "service_for"]

log = logging.getLogger(__name__)

XMLRPC_SERVICES = {"yealink": "Yealink", "htek": "Htek", "akuvox": "Akuvox"}
SRAPS_SERVICES = {"snom": "Snom SRAPS"}


def vendor_map(rps: RpsConfig) -> dict[str, str]:
    """``yealink=yealink,snom=snom`` -> {vendor: service}."""
    mapping: dict[str, str] = {}
    for pair in rps.vendors.split(","):
        vendor, sep, service = pair.partition("=")
        if sep and vendor.strip() and service.strip():
            mapping[vendor.strip().lower()] = service.strip().lower()
    return mapping


def service_for(config: Config, vendor: str) -> str | None:
    """The configured service name for ``vendor`` (None if the vendor has no RPS mapping)."""
    return vendor_map(config.rps).get(vendor.lower())


def _account(rps: RpsConfig, service: str) -> tuple[str, str, str]:
    return (getattr(rps, f"{service}_url", ""), getattr(rps, f"{service}_username", ""),
            getattr(rps, f"{service}_password", ""))


def has_service(config: Config, vendor: str) -> bool:
    """True when ``vendor`` maps to a service with a URL and an account."""
    service = service_for(config, vendor)
    if service not in XMLRPC_SERVICES and service not in SRAPS_SERVICES:
        return False
    url, username, _ = _account(config.rps, service)
    return bool(url and username)


def client_for(config: Config, vendor: str) -> RpsClient:
    """The client for ``vendor``'s redirect service, or RpsError saying what to configure."""
    service = service_for(config, vendor)
    if service is None:
        raise RpsError(f"vendor {vendor!r} has no redirect service in [rps] vendors")
    if service not in XMLRPC_SERVICES and service not in SRAPS_SERVICES:
        known = ", ".join(sorted({*XMLRPC_SERVICES, *SRAPS_SERVICES}))
        raise RpsError(f"[rps] vendors maps {vendor!r} to unknown service {service!r}; "
                       f"known services: {known}")
    url, username, password = _account(config.rps, service)
    if not (url and username):
        raise RpsError(f"the {service} redirect service is not set up: set [rps] "
                       f"{service}_url, {service}_username and {service}_password")
    rps = config.rps
    if service in SRAPS_SERVICES:
        return SrapsClient(url, username, password, timeout=rps.timeout_seconds, name=service)
    return XmlRpcRedirectClient(XMLRPC_SERVICES[service], url, username, password,
                                server_name=rps.server_name, override=rps.override,
                                timeout=rps.timeout_seconds)


def save_to_rps(config: Config, device: Device, actor: str = "system") -> str:
    """Register the device's MAC with its provisioning URL; return a sentence for the admin."""
    client = client_for(config, device.vendor)
    try:
        answer = client.register(device.mac, device_url(config, device))
    except RpsError as exc:
        log.warning("RPS registration of %s with %s failed: %s", device.mac, client.name, exc)
        raise
    audit.record("rps_registered", tenant=device.tenant_id, actor=actor, device=device,
                 mac=device.mac, service=client.name)
    return f"{format_mac(device.mac)} registered with {client.name} RPS ({answer})"


def remove_from_rps(config: Config, device: Device, actor: str = "system") -> str:
    """Deregister the device's MAC; return a sentence for the admin."""
    client = client_for(config, device.vendor)
    try:
        answer = client.deregister(device.mac)
    except RpsError as exc:
        log.warning("RPS deregistration of %s from %s failed: %s", device.mac, client.name, exc)
        raise
    audit.record("rps_deregistered", tenant=device.tenant_id, actor=actor, device=device,
                 mac=device.mac, service=client.name)
    return f"{format_mac(device.mac)} removed from {client.name} RPS ({answer})"


def check_rps(config: Config, mac: str, vendor: str) -> str:
    client = client_for(config, vendor)
    return f"{format_mac(mac)}: {client.check(mac)} ({client.name} RPS)"
