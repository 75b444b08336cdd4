"""Editing a desk's or a tenant's emergency location: the one use case every interface
(web form, API, CLI, CSV import) goes through, so the switch's copies are always marked
in the same transaction as the edit."""

from __future__ import annotations

from hotdesk.emergency import locations
from hotdesk.store.db import write_transaction
from hotdesk.store.models import Device, Tenant
from hotdesk.switch import emergency


def set_location(db, tenant: Tenant, device: Device | None,  # type: ignore[no-untyped-def]
                 values: dict[str, str], actor: str) -> locations.Location:
    """The one edit every interface (web form, API, CLI, CSV import) goes through: check,
    store, and mark the switch's copies in the same transaction. ``device`` None: the
    tenant's default. An empty ``values`` removes the location."""
    location = locations.check(values)
    with write_transaction(db):
        locations.save(tenant, device, location, actor)
        if device is None:
            emergency.mark_tenant(tenant.id)
        else:
            emergency.mark_device(device)
    return location
