"""Time zones per tenant and per user (the clock their desk phones show).

A change re-provisions the phones it affects at once: the tenant's phones, or the phones
the user is logged in on. The config version is bumped, so cached configs are not served.
"""

from __future__ import annotations

import zoneinfo

from peewee import Database

from hotdesk.admin.inventory import InventoryError
from hotdesk.calls.service import HotdeskService
from hotdesk.store import audit
from hotdesk.store.db import write_transaction
from hotdesk.store.models import Device, Session, Tenant, User


def check_zone(name: str) -> str:
    """``name`` stripped, or "" (= inherit); an unknown zone is an InventoryError."""
    name = (name or "").strip()
    if not name:
        return ""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InventoryError(f"time zone {name!r} is not an IANA name such as "
                             "Europe/Berlin") from None
    return name


def _reprovision(db: Database, service: HotdeskService, device_ids: list[int],
                 actor: str) -> None:
    if not device_ids:
        return
    with write_transaction(db):
        Device.update(config_version=Device.config_version + 1).where(
            Device.id.in_(device_ids)).execute()
    for device_id in device_ids:
        service.reprovision(device_id, actor=actor)


def set_tenant_timezone(db: Database, service: HotdeskService, tenant: Tenant, name: str,
                        actor: str = "system") -> int:
    """Set the tenant's zone ("" = [provisioning] timezone); returns phones re-provisioned."""
    zone = check_zone(name)
    with write_transaction(db):
        Tenant.update(timezone=zone).where(Tenant.id == tenant.id).execute()
        audit.record("tenant_timezone_changed", tenant=tenant, actor=actor, timezone=zone)
    ids = [d.id for d in Device.select(Device.id).where(Device.tenant == tenant)]
    _reprovision(db, service, ids, actor)
    return len(ids)


def set_user_timezone(db: Database, service: HotdeskService, user: User, name: str,
                      actor: str = "system") -> int:
    """Set the user's zone ("" = the tenant's); returns phones re-provisioned."""
    zone = check_zone(name)
    with write_transaction(db):
        User.update(timezone=zone).where(User.id == user.id).execute()
        audit.record("user_changed", tenant=user.tenant_id, actor=actor, user=user,
                     fields=["timezone"])
    ids = [s.device_id for s in Session.select(Session.device).where(
        (Session.user == user) & Session.ended_at.is_null())]
    _reprovision(db, service, ids, actor)
    return len(ids)
