"""A large fleet in a fresh database, by bulk inserts: phones, users, active and ended
sessions, calls (login attempts), registrations and audit rows, in two tenants.

Used by bench/fleet_bench.py; seconds for 10,000 phones and 200,000 audit rows on SQLite.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from peewee import Database

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

BATCH = 500  # rows per INSERT (SQLite allows 32766 parameters per statement)
VENDORS = (("yealink", "T54W"), ("yealink", "T46U"), ("poly", "VVX 450"),
           ("cisco", "CP-8841-3PCC"), ("grandstream", "GRP2614"), ("snom", "D785"),
           ("fanvil", "X6U"))
NAMES = ("Smith", "Jones", "Garcia", "Müller", "Rossi", "Dubois", "Nowak", "Silva", "Kim",
         "Tanaka", "Olsen", "Costa", "Novak", "Haddad", "Okafor", "Larsen")
AUDIT_ACTIONS = ("login", "logout", "pin_failed", "auto_logout", "config_fetched",
                 "device_changed", "user_changed", "lockout", "admin_signin")


@dataclass(frozen=True)
class Fleet:
    phones: int = 10_000
    users: int = 20_000
    active_sessions: int = 3_000
    ended_sessions: int = 30_000
    calls: int = 50_000
    audit: int = 200_000
    second_tenant_share: float = 0.1  # this part of every table belongs to tenant "branch"


def _chunks(rows: Iterable[dict], size: int = BATCH) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _insert(db: Database, model, rows: Iterable[dict]) -> None:  # type: ignore[no-untyped-def]
    with db.atomic():
        for batch in _chunks(rows):
            model.insert_many(batch).execute()


def seed(db: Database, fleet: Fleet, rng: random.Random | None = None) -> dict[str, int]:
    """Fill an upgraded, empty database; returns the row counts per table."""
    rng = rng or random.Random(12)
    now = utcnow()
    main = Tenant.get(Tenant.is_default == True)  # noqa: E712
    branch = Tenant.create(name="Branch", sip_domain="branch.example")

    def tenant_of(i: int, total: int) -> int:
        return branch.id if i >= total * (1 - fleet.second_tenant_share) else main.id

    _insert(db, Device, ({
        "tenant": tenant_of(i, fleet.phones), "mac": f"00156{i:07x}",
        "vendor": VENDORS[i % len(VENDORS)][0], "model": VENDORS[i % len(VENDORS)][1],
        "display_name": f"Desk {i:05d} floor {i // 400}", "idle_extension": str(800000 + i),
        "idle_sip_username": str(800000 + i), "idle_sip_password": f"idle-{i}",
        "prov_token": f"fleet-token-{i:07d}", "config_version": 1 + i % 3,
        "fetched_version": 1 + i % 3 - (i % 17 == 0),
        "last_fetch_at": now - timedelta(minutes=rng.randrange(0, 4000)) if i % 9 else None,
        "last_address": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}:5060",
    } for i in range(fleet.phones)))
    _insert(db, User, ({
        "tenant": tenant_of(i, fleet.users), "extension": str(100000 + i),
        "display_name": f"{NAMES[i % len(NAMES)]} {i:05d}", "sip_username": str(100000 + i),
        "voicemail_box": str(100000 + i), "hotdesk_enabled": i % 5 != 0,
    } for i in range(fleet.users)))
    devices = list(Device.select(Device.id, Device.tenant).order_by(Device.id).tuples())
    users = list(User.select(User.id, User.tenant).order_by(User.id).tuples())
    by_tenant = {t: [u for u, ut in users if ut == t] for t in (main.id, branch.id)}

    def user_for(tenant_id: int, i: int) -> int:
        pool = by_tenant[tenant_id]
        return pool[i % len(pool)]

    active = devices[: fleet.active_sessions]
    _insert(db, Session, ({
        "tenant": t, "device": d, "user": user_for(t, n * 3),
        "started_at": now - timedelta(minutes=rng.randrange(1, 600)),
        "expires_at": now + timedelta(hours=8) if n % 2 else None,
    } for n, (d, t) in enumerate(active)))
    _insert(db, Session, ({
        "tenant": t, "device": d, "user": user_for(t, n * 7 + 1),
        "started_at": (start := now - timedelta(minutes=rng.randrange(600, 60 * 24 * 60))),
        "ended_at": start + timedelta(hours=8), "end_reason": "logout",
    } for n, (d, t) in ((n, devices[n % len(devices)]) for n in range(fleet.ended_sessions))))
    _insert(db, LoginAttempt, ({
        "tenant": t, "device": d, "user": user_for(t, n), "extension": "",
        "success": n % 6 != 0, "result": "ok" if n % 6 else "wrong_pin",
        "at": now - timedelta(minutes=rng.randrange(0, 60 * 24 * 30)),
    } for n, (d, t) in ((n, devices[rng.randrange(len(devices))])
                        for n in range(fleet.calls))))
    _insert(db, Registration, ({
        "account": str(800000 + n), "contact_uri": f"sip:{800000 + n}@10.0.0.1:5060",
        "address": "10.0.0.1:5060", "device": d, "refreshed_at": now,
        "expires_at": now + timedelta(minutes=60),
    } for n, (d, _t) in enumerate(devices) if n % 5))
    _insert(db, AuditEvent, _audit_rows(fleet, devices, user_for, now, rng))
    return {"phones": fleet.phones, "users": fleet.users,
            "active_sessions": len(active), "ended_sessions": fleet.ended_sessions,
            "calls": fleet.calls, "audit": fleet.audit}


def _audit_rows(fleet: Fleet, devices: list[tuple[int, int]], user_for,  # type: ignore[no-untyped-def]
                now: datetime, rng: random.Random) -> Iterator[dict]:
    for n in range(fleet.audit):
        d, t = devices[rng.randrange(len(devices))]
        action = AUDIT_ACTIONS[n % len(AUDIT_ACTIONS)]
        yield {"tenant": t, "at": now - timedelta(seconds=rng.randrange(0, 86400 * 30)),
               "actor": f"caller:{100000 + n % fleet.users}", "action": action,
               "device": d, "user": user_for(t, n), "call_id": f"c{n}",
               "detail": json.dumps({"config_version": n % 5}) if n % 3 == 0 else ""}
