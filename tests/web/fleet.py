"""Many phones, users, sessions and audit rows at once (bulk inserts), for the list tests."""

from __future__ import annotations

from datetime import timedelta

from hotdesk.store.models import (
    AuditEvent,
    Device,
    LoginAttempt,
    Registration,
    Session,
    Tenant,
    User,
    utcnow,
)


def add_phones(tenant: Tenant, count: int, start: int = 0, name: str = "Desk",
               vendor: str = "yealink") -> list[Device]:
    """Phones ``name 000``… with MACs 00:15:65:<tenant>:<n> and idle extensions 7<n>."""
    rows = [{"tenant": tenant, "mac": f"001565{tenant.id:02x}{n:04x}", "vendor": vendor,
             "model": "T54W", "display_name": f"{name} {n:03d}",
             "idle_extension": f"7{tenant.id}{n:04d}", "idle_sip_username": f"7{tenant.id}{n:04d}",
             "idle_sip_password": "idle", "prov_token": f"tok-{tenant.id}-{n}"}
            for n in range(start, start + count)]
    Device.insert_many(rows).execute()
    return list(Device.select().where(Device.tenant == tenant).order_by(Device.id)
                .offset(start).limit(count))


def add_users(tenant: Tenant, count: int, start: int = 0, name: str = "User") -> list[User]:
    rows = [{"tenant": tenant, "extension": f"5{tenant.id}{n:04d}",
             "sip_username": f"5{tenant.id}{n:04d}", "display_name": f"{name} {n:03d}",
             "hotdesk_enabled": True} for n in range(start, start + count)]
    User.insert_many(rows).execute()
    return list(User.select().where(User.tenant == tenant).order_by(User.id)
                .offset(start).limit(count))


def log_in(pairs: list[tuple[Device, User]], minutes_ago: int = 0) -> None:
    """Active sessions (one per phone), the newest pair first in time order."""
    now = utcnow()
    Session.insert_many([{"tenant": d.tenant_id, "device": d, "user": u,
                          "started_at": now - timedelta(minutes=minutes_ago + i)}
                         for i, (d, u) in enumerate(pairs)]).execute()


def activity(devices: list[Device], users: list[User]) -> None:
    """What makes every per-row look-up of the lists do work: a call and a registration
    per phone, an audit row per phone and user."""
    now = utcnow()
    LoginAttempt.insert_many([{"tenant": d.tenant_id, "device": d, "result": "ok",
                               "success": True, "at": now} for d in devices]).execute()
    Registration.insert_many([{"account": d.idle_sip_username, "device": d,
                               "contact_uri": f"sip:{d.idle_sip_username}@10.0.0.1:5060",
                               "expires_at": now + timedelta(hours=1)}
                              for d in devices]).execute()
    audit([(d, u, "login") for d, u in zip(devices, users, strict=False)])


def audit(rows: list[tuple[Device | None, User | None, str]]) -> None:
    now = utcnow()
    AuditEvent.insert_many([{"tenant": (d or u).tenant_id, "device": d, "user": u,
                             "action": action, "actor": "system",
                             "at": now - timedelta(seconds=i)}
                            for i, (d, u, action) in enumerate(rows)]).execute()
