"""The statements every ``*70``/``*71`` call runs, compiled once (hotdesk.store.compiled).

Each reads only the columns the rules use and returns model instances built without a
second query, so a login costs its round trips to the database, not the building of
its SQL. Anything off the call path keeps using the models directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from peewee import Database, Field, Model, fn

from hotdesk.store.compiled import Compiled
from hotdesk.store.db import for_update, is_sqlite
from hotdesk.store.models import Device, LoginAttempt, Session, Tenant, User

M = TypeVar("M", bound=Model)
Execute = Callable[[str, Any], Any]  # sends one statement, returns the cursor

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


def _default_tenant_id():  # type: ignore[no-untyped-def]
    return (Tenant.select(Tenant.id).where(Tenant.is_default == True)  # noqa: E712
            .order_by(Tenant.id).limit(1))


def _phone_at(tenant_id, endpoint):  # type: ignore[no-untyped-def]
    return (Device.select(*DEVICE_COLUMNS, *TENANT_COLUMNS).join(Tenant)
            .where((Device.tenant == tenant_id)
                   & ((Device.idle_sip_username == endpoint)
                      | (Device.idle_extension == endpoint))))


# The phone whose idle account calls, in the call's tenant (hotdesk.calls.service
# HotdeskService.tenant_for: the domain's tenant; else, unless there are several, the
# default one), tenant and phone in one statement.
PHONE_AT_ENDPOINT = Compiled(
    lambda endpoint: _phone_at(_default_tenant_id(), endpoint), endpoint=Device.idle_extension)
PHONE_AT_DOMAIN_ENDPOINT = Compiled(
    lambda domain, endpoint: _phone_at(fn.COALESCE(
        Tenant.select(Tenant.id).where(Tenant.sip_domain == domain),
        _default_tenant_id().where(Tenant.select(fn.COUNT(Tenant.id)) <= 1)), endpoint),
    domain=Tenant.sip_domain, endpoint=Device.idle_extension)


def phone_at_endpoint(db: Database, domain: str, endpoint: str) -> Device | None:
    """The hot-desk phone whose idle account is ``endpoint`` in the call's tenant, with
    its tenant attached; None when there is none (or no tenant)."""
    return _device_and_tenant(
        PHONE_AT_DOMAIN_ENDPOINT.one(db, domain=domain, endpoint=endpoint) if domain
        else PHONE_AT_ENDPOINT.one(db, endpoint=endpoint))


DEVICE_WITH_TENANT = Compiled(
    lambda device: Device.select(*DEVICE_COLUMNS, *TENANT_COLUMNS).join(Tenant)
    .where(Device.id == device), device=Device.id)


def device_with_tenant(db: Database, device_id: int) -> Device | None:
    return _device_and_tenant(DEVICE_WITH_TENANT.one(db, device=device_id))


def _device_and_tenant(row: Sequence[Any] | None) -> Device | None:
    """A phone with its tenant attached, from DEVICE_COLUMNS + TENANT_COLUMNS."""
    if row is None:
        return None
    device_row, tenant_row = _split(row, DEVICE_COLUMNS, TENANT_COLUMNS)
    device = build(Device, DEVICE_COLUMNS, device_row)
    device.tenant = build(Tenant, TENANT_COLUMNS, tenant_row)
    return device


# PostgreSQL: a logout's or check-sync's lock on the phone (HotdeskService._lock_device).
LOCK_DEVICE = Compiled(
    lambda device: for_update(Device.select(Device.id).where(Device.id == device)),
    device=Device.id)


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
                                        *DEVICE_COLUMNS).join(User)
    .switch(Session).join(Device)
    .where(Session.ended_at.is_null() & ((Session.user == user) | (Session.device == device))),
    user=Session.user, device=Session.device)


def _session(row: Sequence[Any], tenant: Tenant,
             user_columns: Sequence[Field] = USER_COLUMNS) -> Session:
    """A session from SESSION_COLUMNS + ``user_columns`` + DEVICE_COLUMNS, its user and
    phone attached (the phone's tenant is the session's: ``tenant``)."""
    session_row, user_row, device_row = _split(row, SESSION_COLUMNS, user_columns,
                                               DEVICE_COLUMNS)
    session = build(Session, SESSION_COLUMNS, session_row)
    session.user = build(User, user_columns, user_row)
    session.device = build(Device, DEVICE_COLUMNS, device_row)
    session.device.tenant = tenant
    session.device_mac = session.device.mac
    return session


def active_sessions(db: Database, user_id: int, device_id: int,
                    tenant: Tenant) -> list[Session]:
    """Active sessions of the user anywhere or of anyone on the device, with their user
    and phone attached."""
    return [_session(row, tenant) for row in ACTIVE_SESSIONS.rows(db, user=user_id,
                                                                   device=device_id)]


SESSION_ON = Compiled(
    lambda device: Session.select(*SESSION_COLUMNS, *USER_COLUMNS, *DEVICE_COLUMNS)
    .join(User).switch(Session).join(Device)
    .where((Session.device == device) & Session.ended_at.is_null()), device=Session.device)
USER_AT_DEVICE = Compiled(
    lambda device, extension: User.select(*USER_COLUMNS)
    .join(Device, on=(Device.tenant == User.tenant))
    .where((Device.id == device) & (User.extension == extension)),
    device=Device.id, extension=User.extension)


def session_on(db: Database, device: Device) -> Session | None:
    """The phone's active session with its user; its phone is ``device`` itself (which
    may carry changes not yet written, such as the address the call came from)."""
    row = SESSION_ON.one(db, device=device.id)
    if row is None:
        return None
    session = _session(row, device.tenant)
    session.device = device
    return session


def user_at_device(db: Database, device_id: int, extension: str) -> User | None:
    """The user behind ``extension`` in the phone's tenant."""
    row = USER_AT_DEVICE.one(db, device=device_id, extension=extension)
    return build(User, USER_COLUMNS, row) if row else None


# -- a login's reads and locks, in as few round trips as the rules allow --------------

@dataclass
class LoginState:
    """Everything a login decides on, read in one go (after the locks, inside a login)."""

    device: Device  # with its tenant attached
    user: User | None  # the user behind the dialed extension in the phone's tenant
    attempts: list[tuple[datetime, bool]]  # (at, success) of the newest PIN tries
    sessions: list[Session]  # active sessions of the user anywhere or of anyone here
    new_session_id: int | None = None  # reserved for this login's session (PostgreSQL)


def _columns(alias: str, columns: Sequence[Field]) -> str:
    return ", ".join(f'"{alias}"."{c.column_name}"' for c in columns)


def _table(model: type[Model]) -> str:
    return f'"{model._meta.table_name}"'


# PostgreSQL: one row per active session involved (or one row without), each carrying
# the phone, its tenant, the user and the user's newest PIN tries (as two arrays).
# Every column costs the driver CPU: a session's user is read with the three the rules use.
SESSION_USER_COLUMNS = (User.id, User.extension, User.sip_username)
_LOGIN_STATE_PG = f"""
SELECT {_columns("d", DEVICE_COLUMNS)}, {_columns("t", TENANT_COLUMNS)},
       {_columns("u", USER_COLUMNS)}, "att"."ats", "att"."oks", {{reserve}}{{sessions}}
FROM {_table(Device)} AS "d"
JOIN {_table(Tenant)} AS "t" ON "t"."id" = "d"."tenant_id"
LEFT JOIN {_table(User)} AS "u" ON "u"."tenant_id" = "d"."tenant_id"
     AND "u"."extension" = %s
LEFT JOIN LATERAL (
    SELECT array_agg("a"."at" ORDER BY "a"."at" DESC, "a"."id" DESC) AS "ats",
           array_agg("a"."success" ORDER BY "a"."at" DESC, "a"."id" DESC) AS "oks"
    FROM (SELECT "at", "success", "id" FROM {_table(LoginAttempt)}
          WHERE "user_id" = "u"."id" AND "at" >= %s
            AND "result" IN ('ok', 'wrong_pin')
          ORDER BY "at" DESC, "id" DESC LIMIT %s) AS "a") AS "att" ON TRUE
{{join_sessions}}
WHERE "d"."id" = %s
{{order}}"""  # parameters: extension, since, limit, device
_SESSIONS_PG = {
    "sessions": f""",
       {_columns("s", SESSION_COLUMNS)}, {_columns("su", SESSION_USER_COLUMNS)},
       {_columns("sd", DEVICE_COLUMNS)}""",
    "join_sessions": f"""LEFT JOIN ({_table(Session)} AS "s"
           JOIN {_table(User)} AS "su" ON "su"."id" = "s"."user_id"
           JOIN {_table(Device)} AS "sd" ON "sd"."id" = "s"."device_id")
     ON "s"."ended_at" IS NULL
        AND ("s"."user_id" = "u"."id" OR "s"."device_id" = "d"."id")""",
    "order": 'ORDER BY "s"."id"',
}
_NO_SESSIONS_PG = {"sessions": "", "join_sessions": "", "order": ""}
_RESERVE_SESSION_ID = f"nextval(pg_get_serial_sequence('{_table(Session)}', 'id'))"


def login_state(db: Database, device_id: int, extension: str, since: datetime, limit: int,
                sessions: bool = True) -> LoginState | None:
    """The phone (None: no such phone), the user, their PIN tries since ``since`` (at
    most ``limit``, newest first) and, with ``sessions``, the active sessions involved.

    PostgreSQL: one statement (:func:`locked_login_state` also reserves the id the new
    session will have, so the login's writes can name it before it exists). SQLite: one
    statement each (no round trips there).
    """
    if is_sqlite(db):
        return _login_state_sqlite(db, device_id, extension, since, limit, sessions)
    sql = _LOGIN_STATE_PG.format(reserve="NULL::bigint",
                                 **(_SESSIONS_PG if sessions else _NO_SESSIONS_PG))
    params = [extension, LoginAttempt.at.db_value(since), limit, device_id]
    return _login_state_pg(db.execute_sql(sql, params).fetchall())


def _login_state_pg(rows: list[Sequence[Any]]) -> LoginState | None:
    if not rows:
        return None
    first = rows[0]
    device_row, tenant_row, user_row, (ats, oks, reserved) = _split(
        first, DEVICE_COLUMNS, TENANT_COLUMNS, USER_COLUMNS, (None, None, None))
    tenant = build(Tenant, TENANT_COLUMNS, tenant_row)
    device = build(Device, DEVICE_COLUMNS, device_row)
    device.tenant = tenant
    user = build(User, USER_COLUMNS, user_row) if user_row[0] is not None else None
    start = len(DEVICE_COLUMNS) + len(TENANT_COLUMNS) + len(USER_COLUMNS) + 3
    return LoginState(
        device=device, user=user,
        attempts=list(zip(ats or [], (bool(ok) for ok in oks or []), strict=True)),
        sessions=[_session(row[start:], tenant, SESSION_USER_COLUMNS)
                  for row in rows if len(row) > start and row[start] is not None],
        new_session_id=reserved)


def _login_state_sqlite(db: Database, device_id: int, extension: str, since: datetime,
                        limit: int, sessions: bool) -> LoginState | None:
    device = device_with_tenant(db, device_id)
    if device is None:
        return None
    user = user_by_extension(db, device.tenant_id, extension)
    if user is None:
        return LoginState(device=device, user=None, attempts=[], sessions=[])
    return LoginState(
        device=device, user=user, attempts=recent_attempts(db, user.id, since, limit),
        sessions=active_sessions(db, user.id, device_id, device.tenant) if sessions else [])


# PostgreSQL row locks of a login (hotdesk.calls.service.HotdeskService._lock_login):
# the user behind the extension in the phone's tenant, then, in a statement of its own
# (it must see what the user's lock waited for), the phone and every phone the user is
# logged in on, locked in id order.
def _user_of(device, extension):  # type: ignore[no-untyped-def]
    """The user behind ``extension`` in the phone's tenant (a query, for subqueries)."""
    return User.select(User.id).where(
        (User.tenant == Device.select(Device.tenant).where(Device.id == device))
        & (User.extension == extension))


LOCK_LOGIN_USER = Compiled(lambda device, extension: for_update(_user_of(device, extension)),
                           device=Device.id, extension=User.extension)
# (The user is locked by then: the same look-up finds the same row.)
LOCK_LOGIN_PHONES = Compiled(
    lambda device, extension: for_update(Device.select(Device.id).where(
        (Device.id == device) | Device.id.in_(
            Session.select(Session.device).where(
                (Session.user == _user_of(device, extension)) & Session.ended_at.is_null())))
        .order_by(Device.id)),
    device=Device.id, extension=User.extension)


def locked_login_state(db: Database, device_id: int, extension: str, since: datetime,
                       limit: int, execute: Execute) -> LoginState | None:
    """PostgreSQL: lock the user, then the phones involved in id order, then read the
    login's state (:func:`login_state`, with a session id reserved), in one round trip.

    Three statements in one simple query: in READ COMMITTED each statement sees what
    was committed before *it* began, so each sees what the lock before it waited for
    (one statement would not: its snapshot is taken before it waits). None: no such
    phone.
    """
    lock_user, user_params = LOCK_LOGIN_USER.bind(db, device=device_id, extension=extension)
    lock_phones, phone_params = LOCK_LOGIN_PHONES.bind(db, device=device_id,
                                                       extension=extension)
    read = _LOGIN_STATE_PG.format(reserve=_RESERVE_SESSION_ID, **_SESSIONS_PG)
    params = [*user_params, *phone_params, extension, LoginAttempt.at.db_value(since), limit,
              device_id]
    return _login_state_pg(execute(f"{lock_user}; {lock_phones}; {read}", params).fetchall())


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
