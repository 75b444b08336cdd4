"""Read-only views of the state for the web admin and its API: phone status, dashboard
figures, the audit trail and NOTIFY results. Every query takes the tenant scope
explicitly (``None`` = every tenant) so no caller can forget it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from peewee import JOIN, fn

from hotdesk.store.db import current_database
from hotdesk.store.models import (
    AuditEvent,
    Device,
    LoginAttempt,
    OutboxNotify,
    Session,
    Tenant,
    User,
    utcnow,
)

Scope = Sequence[int] | None  # tenant ids an admin may see; None = all tenants


def scoped(query, model, scope: Scope):  # type: ignore[no-untyped-def]
    return query if scope is None else query.where(model.tenant.in_(list(scope)))


@dataclass(frozen=True)
class PhoneStatus:
    state: str  # in_use | idle | offline
    last_seen: datetime | None
    user: User | None
    session: Session | None


def last_seen_map(device_ids: list[int]) -> dict[int, datetime]:
    """Newest call (login attempt) per device; fetch times are on the Device row."""
    if not device_ids:
        return {}
    rows = (LoginAttempt.select(LoginAttempt.device, fn.MAX(LoginAttempt.at).alias("seen"))
            .where(LoginAttempt.device.in_(device_ids)).group_by(LoginAttempt.device))
    return {r.device_id: r.seen for r in rows}


def phone_statuses(devices: list[Device], offline_after: timedelta,
                   now: datetime | None = None) -> dict[int, PhoneStatus]:
    """in_use: a user is logged in. offline: never fetched its config and never called, or
    not seen (config fetch or call) for ``offline_after``. idle: otherwise."""
    now = now or utcnow()
    ids = [d.id for d in devices]
    sessions = {s.device_id: s for s in Session.select(Session, User).join(User)
                .where(Session.device.in_(ids) & Session.ended_at.is_null())} if ids else {}
    calls = last_seen_map(ids)
    result: dict[int, PhoneStatus] = {}
    for device in devices:
        seen = max([t for t in (device.last_fetch_at, calls.get(device.id)) if t],
                   default=None)
        session = sessions.get(device.id)
        if session is not None:
            state = "in_use"
        elif seen is None or now - seen > offline_after:
            state = "offline"
        else:
            state = "idle"
        result[device.id] = PhoneStatus(state=state, last_seen=seen,
                                        user=session.user if session else None,
                                        session=session)
    return result


def phone_state_counts(scope: Scope, offline_after: timedelta,
                       now: datetime | None = None) -> dict[str, int]:
    """The dashboard's in_use / idle / offline counts by the rules of
    :func:`phone_statuses`, counted in the database: three COUNTs whatever the fleet size."""
    cutoff = (now or utcnow()) - offline_after
    devices = scoped(Device.select(), Device, scope)
    in_session = (Session.select(Session.device)
                  .where(Session.ended_at.is_null() & (Session.device == Device.id)))
    called = (LoginAttempt.select(LoginAttempt.device)
              .where((LoginAttempt.device == Device.id) & (LoginAttempt.at >= cutoff)))
    total = devices.count()
    in_use = devices.where(fn.EXISTS(in_session)).count()
    idle = (devices.where(~fn.EXISTS(in_session)
                          & ((Device.last_fetch_at >= cutoff) | fn.EXISTS(called)))
            .count())
    return {"in_use": in_use, "idle": idle, "offline": total - in_use - idle, "total": total}


def logins_per_hour(scope: Scope, now: datetime | None = None) -> list[tuple[datetime, int]]:
    """Successful logins in each of the last 24 whole hours (oldest first, UTC)."""
    now = (now or utcnow()).replace(minute=0, second=0, microsecond=0)
    start = now - timedelta(hours=23)
    buckets = {start + timedelta(hours=i): 0 for i in range(24)}
    query = scoped(AuditEvent.select(AuditEvent.at).where((AuditEvent.action == "login")
                                                         & (AuditEvent.at >= start)),
                   AuditEvent, scope)
    for row in query:
        hour = row.at.replace(minute=0, second=0, microsecond=0)
        if hour in buckets:
            buckets[hour] += 1
    return list(buckets.items())


FAILURE_ACTIONS = ("pin_failed", "lockout", "login_refused_locked", "login_denied_elsewhere",
                   "config_denied", "admin_signin_failed")


def recent_failures(scope: Scope, limit: int = 10) -> list[AuditEvent]:
    query = (AuditEvent.select().where(AuditEvent.action.in_(FAILURE_ACTIONS))
             .order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit))
    return list(scoped(query, AuditEvent, scope))


@dataclass(frozen=True)
class AuditFilter:
    user: str = ""  # extension
    phone: str = ""  # MAC (normalised) or idle extension
    action: str = ""
    since: datetime | None = None
    until: datetime | None = None


def audit_filtered(scope: Scope, flt: AuditFilter):  # type: ignore[no-untyped-def]
    """The audit rows ``flt`` selects, without joins: user and phone filters are id
    subqueries, so counting 200,000 rows never touches the user or device tables."""
    query = scoped(AuditEvent.select(), AuditEvent, scope)
    if flt.user:
        query = query.where(AuditEvent.user.in_(
            User.select(User.id).where(User.extension == flt.user)))
    if flt.phone:
        query = query.where(AuditEvent.device.in_(
            Device.select(Device.id).where((Device.mac == flt.phone)
                                           | (Device.idle_extension == flt.phone))))
    if flt.action:
        query = query.where(AuditEvent.action == flt.action)
    if flt.since:
        query = query.where(AuditEvent.at >= flt.since)
    if flt.until:
        query = query.where(AuditEvent.at <= flt.until)
    return query


def audit_query(scope: Scope, flt: AuditFilter):  # type: ignore[no-untyped-def]
    """The filtered rows with their user and phone (one query), newest first."""
    query = (audit_filtered(scope, flt).select(AuditEvent, User, Device)
             .join(User, JOIN.LEFT_OUTER, on=(AuditEvent.user == User.id))
             .switch(AuditEvent)
             .join(Device, JOIN.LEFT_OUTER, on=(AuditEvent.device == Device.id)))
    return query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc())


def audit_actions() -> list[str]:
    """The distinct actions, by a skip scan of the action index (one index probe per
    action name, instead of reading every row of a large audit table)."""
    cursor = current_database().execute_sql(
        "WITH RECURSIVE a(action) AS ("
        " SELECT MIN(action) FROM audit_event"
        " UNION ALL"
        " SELECT (SELECT MIN(e.action) FROM audit_event e WHERE e.action > a.action)"
        " FROM a WHERE a.action IS NOT NULL)"
        " SELECT action FROM a WHERE action IS NOT NULL ORDER BY action")
    return [row[0] for row in cursor.fetchall()]


def audit_detail(event: AuditEvent) -> dict:
    try:
        value = json.loads(event.detail) if event.detail else {}
    except ValueError:
        return {"text": event.detail}
    return value if isinstance(value, dict) else {"value": value}


def notify_result(row: OutboxNotify) -> tuple[str, str]:
    """(result, why) for one queued check-sync as an admin should read it."""
    if row.status == "sent":
        return "sent", ""
    if row.status == "failed":
        return "failed", row.last_error or "gave up"
    if row.status == "superseded":
        return "superseded", "a newer NOTIFY for this phone replaced it"
    if row.last_error:
        return "queued", f"switch unavailable or refused, will retry: {row.last_error}"
    return "queued", "waiting for the switch connection to send it"


def outbox_summary(scope: Scope) -> dict[str, object]:
    pending = scoped(OutboxNotify.select().where(OutboxNotify.status == "pending"),
                     OutboxNotify, scope)
    failed = scoped(OutboxNotify.select().where(OutboxNotify.last_error != "")
                    .order_by(OutboxNotify.id.desc()), OutboxNotify, scope).first()
    last_sent = scoped(OutboxNotify.select().where(OutboxNotify.status == "sent")
                       .order_by(OutboxNotify.sent_at.desc()), OutboxNotify, scope).first()
    return {
        "pending": pending.count(),
        "last_error": failed.last_error if failed else "",
        "last_error_at": failed.next_attempt_at if failed else None,
        "last_sent_at": last_sent.sent_at if last_sent else None,
    }


def tenants(scope: Scope) -> list[Tenant]:
    query = Tenant.select().order_by(Tenant.is_default.desc(), Tenant.name)
    return list(query if scope is None else query.where(Tenant.id.in_(list(scope))))
