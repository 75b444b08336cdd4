"""The statements every ``*70``/``*71`` call runs, compiled once (hotdesk.store.compiled).

Each reads only the columns the rules use and returns model instances built without a
second query, so a login costs its round trips to the database, not the building of
its SQL. Anything off the call path keeps using the models directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from peewee import Database, Field, Model, fn

from hotdesk.store.compiled import Compiled
from hotdesk.store.db import for_update
from hotdesk.store.models import Device, LoginAttempt, Session, Tenant, User

M = TypeVar("M", bound=Model)

TENANT_COLUMNS = (Tenant.id, Tenant.name, Tenant.sip_domain, Tenant.is_default,
                  Tenant.multiple_login, Tenant.max_login_minutes, Tenant.pin_source)
DEVICE_COLUMNS = (Device.id, Device.tenant, Device.mac, Device.vendor, Device.display_name,
                  Device.idle_extension, Device.idle_sip_username, Device.config_version,
                  Device.last_address)
USER_COLUMNS = (User.id, User.tenant, User.extension, User.display_name, User.sip_username,
                User.voicemail_box, User.voicemail_context, User.pin_hash,
                User.hotdesk_enabled, User.max_login_minutes)


def build(model: type[M], columns: Sequence[Field], row: Sequence[Any]) -> M:
    """A model instance from a row of ``columns`` (values converted as peewee would)."""
    values = {c.name: c.python_value(v) for c, v in zip(columns, row, strict=False)}
    return model(__no_default__=True, **values)


def _split(row: Sequence[Any], *groups: Sequence[Field]) -> list[Sequence[Any]]:
    out, start = [], 0
    for group in groups:
        out.append(row[start:start + len(group)])
        start += len(group)
    return out


TENANT_BY_DOMAIN = Compiled(
    lambda domain: Tenant.select(*TENANT_COLUMNS).where(Tenant.sip_domain == domain),
    domain=Tenant.sip_domain)
DEFAULT_TENANT = Compiled(
    lambda: Tenant.select(*TENANT_COLUMNS).where(Tenant.is_default == True  # noqa: E712
                                                 ).order_by(Tenant.id).limit(1))
TENANT_COUNT = Compiled(lambda: Tenant.select(fn.COUNT(Tenant.id)))


def tenant_by_domain(db: Database, domain: str) -> Tenant | None:
    row = TENANT_BY_DOMAIN.one(db, domain=domain)
    return build(Tenant, TENANT_COLUMNS, row) if row else None


def default_tenant(db: Database) -> Tenant | None:
    row = DEFAULT_TENANT.one(db)
    return build(Tenant, TENANT_COLUMNS, row) if row else None


def tenant_count(db: Database) -> int:
    return int(TENANT_COUNT.one(db)[0])


DEVICE_BY_ENDPOINT = Compiled(
    lambda tenant, endpoint: Device.select(*DEVICE_COLUMNS).where(
        (Device.tenant == tenant)
        & ((Device.idle_sip_username == endpoint) | (Device.idle_extension == endpoint))),
    tenant=Device.tenant, endpoint=Device.idle_extension)


def device_by_endpoint(db: Database, tenant: Tenant, endpoint: str) -> Device | None:
    row = DEVICE_BY_ENDPOINT.one(db, tenant=tenant.id, endpoint=endpoint)
    if row is None:
        return None
    device = build(Device, DEVICE_COLUMNS, row)
    device.tenant = tenant
    return device


DEVICE_WITH_TENANT = Compiled(
    lambda device: Device.select(*DEVICE_COLUMNS, *TENANT_COLUMNS).join(Tenant)
    .where(Device.id == device), device=Device.id)


def device_with_tenant(db: Database, device_id: int) -> Device | None:
    row = DEVICE_WITH_TENANT.one(db, device=device_id)
    if row is None:
        return None
    device_row, tenant_row = _split(row, DEVICE_COLUMNS, TENANT_COLUMNS)
    device = build(Device, DEVICE_COLUMNS, device_row)
    device.tenant = build(Tenant, TENANT_COLUMNS, tenant_row)
    return device


# PostgreSQL row locks of the call path (hotdesk.calls.service._lock_login).
LOCK_DEVICE = Compiled(
    lambda device: for_update(Device.select(Device.id).where(Device.id == device)),
    device=Device.id)
LOCK_USER = Compiled(
    lambda user: for_update(User.select(User.id).where(User.id == user)), user=User.id)
TENANT_OF = Compiled(lambda device: Device.select(Device.tenant).where(Device.id == device),
                     device=Device.id)
SESSION_DEVICES = Compiled(
    lambda user: Session.select(Session.device).where(
        (Session.user == user) & Session.ended_at.is_null()), user=Session.user)


def tenant_id_of(db: Database, device_id: int) -> int | None:
    row = TENANT_OF.one(db, device=device_id)
    return row[0] if row else None


def session_devices(db: Database, user_id: int) -> list[int]:
    """The phones the user is logged in on."""
    return [row[0] for row in SESSION_DEVICES.rows(db, user=user_id)]


USER_BY_EXTENSION = Compiled(
    lambda tenant, extension: User.select(*USER_COLUMNS).where(
        (User.tenant == tenant) & (User.extension == extension)),
    tenant=User.tenant, extension=User.extension)
USER_BY_ENDPOINT = Compiled(
    lambda tenant, endpoint: User.select(*USER_COLUMNS).where(
        (User.tenant == tenant) & ((User.sip_username == endpoint)
                                   | (User.extension == endpoint))),
    tenant=User.tenant, endpoint=User.extension)


def user_by_extension(db: Database, tenant_id: int, extension: str) -> User | None:
    row = USER_BY_EXTENSION.one(db, tenant=tenant_id, extension=extension)
    return build(User, USER_COLUMNS, row) if row else None


def user_by_endpoint(db: Database, tenant_id: int, endpoint: str) -> User | None:
    row = USER_BY_ENDPOINT.one(db, tenant=tenant_id, endpoint=endpoint)
    return build(User, USER_COLUMNS, row) if row else None


RECENT_ATTEMPTS = Compiled(
    lambda user, since: LoginAttempt.select(LoginAttempt.at, LoginAttempt.success).where(
        (LoginAttempt.user == user) & (LoginAttempt.at >= since)
        & (LoginAttempt.result.in_(["ok", "wrong_pin"])))
    .order_by(LoginAttempt.at.desc(), LoginAttempt.id.desc()).limit(100),
    user=LoginAttempt.user, since=LoginAttempt.at)


def recent_attempts(db: Database, user_id: int, since: datetime,
                    limit: int) -> list[tuple[datetime, bool]]:
    """(at, success) of the user's newest PIN tries since ``since``, newest first."""
    out = []
    for at, success in RECENT_ATTEMPTS.rows(db, user=user_id, since=since):
        out.append((LoginAttempt.at.python_value(at), bool(success)))
        if len(out) >= limit:
            break
    return out


SESSION_COLUMNS = (Session.id, Session.tenant, Session.device, Session.user)
ACTIVE_SESSIONS = Compiled(
    lambda user, device: Session.select(*SESSION_COLUMNS, *USER_COLUMNS,
                                        Device.mac).join(User)
    .switch(Session).join(Device)
    .where(Session.ended_at.is_null() & ((Session.user == user) | (Session.device == device))),
    user=Session.user, device=Session.device)


def active_sessions(db: Database, user_id: int, device_id: int) -> list[Session]:
    """Active sessions of the user anywhere or of anyone on the device, with their user
    (and the device's MAC) attached."""
    sessions = []
    for row in ACTIVE_SESSIONS.rows(db, user=user_id, device=device_id):
        session_row, user_row, (mac,) = _split(row, SESSION_COLUMNS, USER_COLUMNS, (Device.mac,))
        session = build(Session, SESSION_COLUMNS, session_row)
        session.user = build(User, USER_COLUMNS, user_row)
        session.device_mac = mac
        sessions.append(session)
    return sessions


NOTE_ADDRESS = Compiled(
    lambda device, address: Device.update(last_address=address).where(Device.id == device),
    device=Device.id, address=Device.last_address)
BUMP_CONFIG = Compiled(
    lambda device: Device.update(config_version=Device.config_version + 1)
    .where(Device.id == device), device=Device.id)
INSERT_SESSION = Compiled(
    lambda tenant, device, user, started, expires, call_id: Session.insert(
        tenant=tenant, device=device, user=user, started_at=started, expires_at=expires,
        call_id=call_id),
    tenant=Session.tenant, device=Session.device, user=Session.user,
    started=Session.started_at, expires=Session.expires_at, call_id=Session.call_id)


def _insert_attempt(success: bool) -> Compiled:
    """One PIN try's row; ``success`` is written inline (a boolean cannot be a stand-in)."""
    return Compiled(
        lambda tenant, user, device, extension, result, source, call_id, at:
        LoginAttempt.insert(tenant=tenant, user=user, device=device, extension=extension,
                            success=success, result=result, source=source, call_id=call_id,
                            at=at),
        tenant=LoginAttempt.tenant, user=LoginAttempt.user, device=LoginAttempt.device,
        extension=LoginAttempt.extension, result=LoginAttempt.result,
        source=LoginAttempt.source, call_id=LoginAttempt.call_id, at=LoginAttempt.at)


INSERT_ATTEMPT = {True: _insert_attempt(True), False: _insert_attempt(False)}
CLOSE_SESSION = Compiled(
    lambda session, now, reason: Session.update(ended_at=now, end_reason=reason)
    .where(Session.id == session),
    session=Session.id, now=Session.ended_at, reason=Session.end_reason)
