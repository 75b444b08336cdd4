"""Phones seen on the LAN through SIP PnP discovery, and what to tell them.

A factory-fresh phone multicasts a ``SUBSCRIBE Event: ua-profile``. Every sighting is
recorded (vendor, model, firmware, address), so the admin can adopt unknown phones and
so the provisioning URL can be pushed to a phone as soon as it is added. Only a MAC that
belongs to a registered :class:`Device` is ever given a URL.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from peewee import Database, IntegrityError

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
