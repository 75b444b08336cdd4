"""Phones seen on the LAN through SIP PnP discovery, and what to tell them.

A factory-fresh phone multicasts a ``SUBSCRIBE Event: ua-profile``. Every sighting is
recorded (vendor, model, firmware, address), so the admin can adopt unknown phones and
so the provisioning URL can be pushed to a phone as soon as it is added.

A PnP request proves nothing but knowledge of a MAC, and the URL it would get serves the
phone's SIP password. So the URL is only given (:func:`pnp_decision`) to a registered
phone whose method is PnP, from an allowed network, and only while it has never fetched
a config or within a window an admin armed (:func:`arm`); any other request is recorded
for the Discovered list and answered without a URL.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from peewee import Database, IntegrityError

from hotdesk.mac import format_mac
from hotdesk.store import audit
from hotdesk.store.db import write_transaction
from hotdesk.store.models import Device, DiscoveredPhone, utcnow

log = logging.getLogger(__name__)

# Stored columns are CharField(255); a phone's claims are cut to fit.
_MAX_FIELD = 120


@dataclass(frozen=True)
class Sighting:
    """What one PnP SUBSCRIBE told us about a phone (all strings already decoded)."""

    mac: str  # 12 lower-case hex digits
    vendor: str = ""
    model: str = ""
    firmware: str = ""
    address: str = ""  # ip:port the phone's SIP messages come from


def _clip(value: str) -> str:
    return "".join(ch for ch in value if ch.isprintable())[:_MAX_FIELD]


def record_sighting(db: Database, sighting: Sighting,
                    now: datetime | None = None) -> tuple[DiscoveredPhone, Device | None]:
    """Create or refresh the phone's discovery row; return it and its Device, if registered.

    Known phones are recorded too: their address is what a later push needs.
    """
    now = now or utcnow()
    fields = dict(vendor=_clip(sighting.vendor), model=_clip(sighting.model),
                  firmware=_clip(sighting.firmware), address=_clip(sighting.address),
                  last_seen=now)
    for _ in range(2):
        try:
            with write_transaction(db):
                device = Device.get_or_none(Device.mac == sighting.mac)
                row = DiscoveredPhone.get_or_none(DiscoveredPhone.mac == sighting.mac)
                if row is None:
                    row = DiscoveredPhone.create(mac=sighting.mac, first_seen=now,
                                                 adopted=device is not None, **fields)
                    audit.record("phone_discovered", actor=f"phone:{sighting.mac}",
                                 device=device, mac=sighting.mac, vendor=fields["vendor"],
                                 model=fields["model"], address=fields["address"])
                else:
                    (DiscoveredPhone.update(adopted=device is not None, **fields)
                     .where(DiscoveredPhone.id == row.id).execute())
                    row = DiscoveredPhone.get_by_id(row.id)
            return row, device
        except IntegrityError:
            # Another process inserted the same MAC between our read and write: update it.
            continue
    raise RuntimeError(f"could not record PnP sighting of {sighting.mac}")


def phone_address(mac: str) -> str:
    """The ip:port a phone last sent a PnP SUBSCRIBE from, or "" if it was never seen."""
    row = DiscoveredPhone.get_or_none(DiscoveredPhone.mac == mac)
    return row.address if row else ""


def list_discovered(include_adopted: bool = False) -> list[DiscoveredPhone]:
    query = DiscoveredPhone.select().order_by(DiscoveredPhone.last_seen.desc())
    if not include_adopted:
        query = query.where(DiscoveredPhone.adopted == False)  # noqa: E712
    return list(query)


def forget(db: Database, mac: str) -> bool:
    """Drop a discovery row (e.g. a phone that left the LAN); True if there was one."""
    with write_transaction(db):
        return DiscoveredPhone.delete().where(DiscoveredPhone.mac == mac).execute() > 0


# Where a PnP answer may carry a URL when [pnp] allow_networks is empty: the LAN ranges.
DEFAULT_PNP_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
                        "127.0.0.0/8", "fc00::/7", "fe80::/10", "::1/128")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def pnp_networks(text: str) -> list[Network]:
    """``[pnp] allow_networks`` (CIDRs separated by commas or spaces), or the defaults."""
    parts = [p for p in re.split(r"[\s,]+", text.strip()) if p] or list(DEFAULT_PNP_NETWORKS)
    nets: list[Network] = []
    for part in parts:
        try:
            nets.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"[pnp] allow_networks: {part!r} is not a network such as "
                             "192.0.2.0/24") from None
    return nets


@dataclass(frozen=True)
class PnpDecision:
    give_url: bool
    reason: str  # why not, for the log, the audit and the Discovered page


def pnp_decision(device: Device | None, source_ip: str, networks: list[Network],
                 now: datetime | None = None) -> PnpDecision:
    """Whether a PnP request for ``device`` from ``source_ip`` may receive its URL."""
    if device is None:
        return PnpDecision(False, "not a registered phone")
    if device.method != "pnp":
        return PnpDecision(False, f"provisioned by {device.method.upper()}, not PnP")
    try:
        ip = ipaddress.ip_address(source_ip.split("%", 1)[0])
    except ValueError:
        return PnpDecision(False, "source address unreadable")
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if not any(ip in net for net in networks):
        return PnpDecision(False, f"source {ip} outside [pnp] allow_networks")
    now = now or utcnow()
    if device.pnp_armed_until is not None and device.pnp_armed_until > now:
        return PnpDecision(True, "armed")
    if device.fetched_version == 0 and device.last_fetch_at is None:
        return PnpDecision(True, "never fetched a config")
    return PnpDecision(False, "already provisioned; arm PnP on the phone's page or with "
                              "hotdesk pnp arm MAC")


def arm(db: Database, device: Device, minutes: int, actor: str = "system",
        now: datetime | None = None) -> datetime:
    """Let ``device`` get its URL by PnP for the next ``minutes`` (e.g. after a factory
    reset); returns when the window closes."""
    if device.method != "pnp":
        raise ValueError(f"phone {format_mac(device.mac)} is provisioned by "
                         f"{device.method.upper()}; "
                         "PnP is not answered for it")
    until = (now or utcnow()) + timedelta(minutes=minutes)
    with write_transaction(db):
        Device.update(pnp_armed_until=until).where(Device.id == device.id).execute()
        audit.record("pnp_armed", tenant=device.tenant_id, actor=actor, device=device,
                     until=until.isoformat(timespec="seconds"))
    return until
