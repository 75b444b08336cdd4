"""Dispatchable locations: what a desk's (or a tenant's default) civic address holds,
how it is checked, and how it is written for a PSAP (PIDF-LO civic address) and a human.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

from hotdesk.emergency.models import EmergencyLocation
from hotdesk.store import audit
from hotdesk.store.compiled import Compiled
from hotdesk.store.db import current_database
from hotdesk.store.models import Device, Tenant, utcnow

# Field -> RFC 5139 / RFC 4776 civic address element (Asterisk res_geolocation code).
CIVIC_CODES = {"country": "country", "region": "A1", "city": "A3", "postal_code": "PC",
               "street": "RD", "number": "HNO", "building": "BLD", "floor": "FLR",
               "room": "ROOM", "text": "LOC"}
MAX_FIELD = 120
# A callback number the PSAP can dial: digits, an optional leading +.
CALLBACK = re.compile(r"^\+?[0-9]{2,20}$")
# Never stored: they would break the switch's quoting (res_geolocation's "…" values,
# FreeSWITCH's / separated db API) or its variable expansion.
FORBIDDEN = re.compile(r'["\\/$\r\n\t]')


class LocationError(ValueError):
    """A location field is invalid; the message names it."""


@dataclass(frozen=True)
class Location:
    """A civic address plus the desk's callback number; every field may be empty."""

    country: str = ""
    region: str = ""
    city: str = ""
    postal_code: str = ""
    street: str = ""
    number: str = ""
    building: str = ""
    floor: str = ""
    room: str = ""
    text: str = ""
    callback: str = ""

    @property
    def empty(self) -> bool:
        return not any(asdict(self).values())

    def civic(self) -> str:
        """``country="US",A1="CA",…``: res_geolocation's civicAddress ``location_info``."""
        return ",".join(f'{code}="{getattr(self, name)}"' for name, code in CIVIC_CODES.items()
                        if getattr(self, name))

    def describe(self) -> str:
        """One line a person reads: "1 Main St, Springfield, CA, US; building A, floor 3"."""
        street = " ".join(p for p in (self.number, self.street) if p)
        place = ", ".join(p for p in (street, self.postal_code, self.city, self.region,
                                      self.country) if p)
        inside = ", ".join(f"{label} {v}" for label, v in (
            ("building", self.building), ("floor", self.floor), ("room", self.room)) if v)
        return "; ".join(p for p in (place, inside, self.text) if p)


FIELDS = [f.name for f in fields(Location)]


def check(values: dict[str, str]) -> Location:
    """A Location from user input, or LocationError naming the bad field."""
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise LocationError(f"unknown location field(s): {', '.join(sorted(unknown))}; "
                            f"use {', '.join(FIELDS)}")
    clean: dict[str, str] = {}
    for name in FIELDS:
        value = (values.get(name) or "").strip()
        if len(value) > MAX_FIELD:
            raise LocationError(f"{name}: at most {MAX_FIELD} characters")
        if FORBIDDEN.search(value):
            raise LocationError(f'{name}: must not contain ", \\, /, $ or control characters')
        clean[name] = value
    if clean["callback"] and not CALLBACK.match(clean["callback"].replace(" ", "")):
        raise LocationError("callback: a phone number, digits with an optional leading +")
    clean["callback"] = clean["callback"].replace(" ", "")
    if clean["country"] and not re.fullmatch(r"[A-Za-z]{2}", clean["country"]):
        raise LocationError("country: the two-letter ISO 3166 code (US, DE, …)")
    clean["country"] = clean["country"].upper()
    return Location(**clean)


# Read by the emergency drain for every account a login moves, so compiled once
# (hotdesk.store.compiled): building these SELECTs cost more than the rest of a drain.
_COLUMNS = [getattr(EmergencyLocation, name) for name in FIELDS]
_DESK = Compiled(lambda device: EmergencyLocation.select(*_COLUMNS)
                 .where(EmergencyLocation.device == device).limit(1),
                 device=EmergencyLocation.device)
_TENANT = Compiled(lambda tenant: EmergencyLocation.select(*_COLUMNS)
                   .where((EmergencyLocation.tenant == tenant)
                          & EmergencyLocation.device.is_null()).limit(1),
                   tenant=EmergencyLocation.tenant)


def _of(row: Sequence[str] | None) -> Location | None:
    return Location(*row) if row else None


def desk_location(device_id: int) -> Location | None:
    return _of(_DESK.one(current_database(), device=device_id))


def tenant_location(tenant_id: int) -> Location | None:
    return _of(_TENANT.one(current_database(), tenant=tenant_id))


def effective(device: Device) -> Location | None:
    """The desk's own location, the tenant's default for anything the desk leaves empty."""
    return effective_at(device.id, device.tenant_id)


def effective_at(device_id: int, tenant_id: int) -> Location | None:
    """:func:`effective` from the ids alone (the emergency drain has no Device row)."""
    own, default = desk_location(device_id), tenant_location(tenant_id)
    if own is None or default is None:
        return own or default
    return Location(**{n: getattr(own, n) or getattr(default, n) for n in FIELDS})


def save(tenant: Tenant, device: Device | None, location: Location, actor: str) -> None:
    """Store (or with an empty location, remove) a desk's or the tenant's location.
    The caller runs this inside the write transaction that also marks the switch copy."""
    query = EmergencyLocation.delete().where(EmergencyLocation.tenant == tenant.id)
    query = query.where(EmergencyLocation.device == device.id if device
                        else EmergencyLocation.device.is_null())
    query.execute()
    if not location.empty:
        EmergencyLocation.create(tenant=tenant.id, device=device.id if device else None,
                                 updated_at=utcnow(), **asdict(location))
    audit.record("emergency_location", tenant=tenant, actor=actor, device=device,
                 location=location.describe() or "(removed)", callback=location.callback)
