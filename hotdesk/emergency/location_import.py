"""Desk locations from CSV: one row per desk, a header row naming the columns.

``mac`` plus any of the location fields (``country, region, city, postal_code, street,
number, building, floor, room, text, callback``), in any order. One bad row costs that
row (reported with its line number); each good row is one transaction, like an edit.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from peewee import Database

from hotdesk.emergency import editing, locations
from hotdesk.mac import InvalidMac, normalise_mac
from hotdesk.store.models import Device, Tenant

MAX_BYTES = 5 * 1024 * 1024


@dataclass
class LocationImport:
    done: list[str] = field(default_factory=list)  # MACs whose location was set
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line, why)


def import_csv(db: Database, tenant: Tenant | None, text: str,
               actor: str = "system") -> LocationImport:
    """Set the locations a CSV file lists; ``tenant`` None = any tenant's phones."""
    result = LocationImport()
    if len(text.encode()) > MAX_BYTES:
        result.problems.append((0, f"file larger than {MAX_BYTES // 1024 // 1024} MB"))
        return result
    reader = csv.DictReader(io.StringIO(text.replace("\x00", "")))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    unknown = set(header) - {"mac", *locations.FIELDS}
    if "mac" not in header or unknown:
        result.problems.append((1, "the header row must name mac and location columns "
                                   f"({', '.join(locations.FIELDS)})"
                                + (f"; unknown: {', '.join(sorted(unknown))}" if unknown else "")))
        return result
    reader.fieldnames = header
    try:
        for row in reader:
            _row(db, tenant, row, reader.line_num, actor, result)
    except csv.Error as exc:
        result.problems.append((reader.line_num, f"CSV error: {exc}"))
    return result


def _row(db: Database, tenant: Tenant | None, row: dict[str, str | None], line: int,
         actor: str, result: LocationImport) -> None:
    mac = (row.pop("mac") or "").strip()
    try:
        key = normalise_mac(mac)
    except InvalidMac:
        result.problems.append((line, f"{mac[:20]!r} is not a MAC address"))
        return
    query = Device.select().where(Device.mac == key)
    if tenant is not None:
        query = query.where(Device.tenant == tenant.id)
    device = query.first()
    if device is None:
        result.problems.append((line, f"no hot-desking phone with MAC {mac}"))
        return
    try:
        editing.set_location(db, device.tenant, device,
                               {k: v or "" for k, v in row.items() if k}, actor)
    except locations.LocationError as exc:
        result.problems.append((line, f"{mac}: {exc}"))
        return
    result.done.append(device.mac)
