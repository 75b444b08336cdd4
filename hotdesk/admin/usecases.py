"""Admin use cases for users and phones: the one layer the CLI, the web pages and the
REST API all call, so a change has the same consequences whichever front end made it.

Each function does the change and what must follow it (a check-sync NOTIFY, sessions
ended, the PnP/RPS push) and returns a typed result; refusals are
:class:`~hotdesk.admin.errors.InventoryError` with a kind the front ends map to a
status. Front ends find the record in their own scope (tenant, MAC) and render.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from peewee import fn

from hotdesk.admin import inventory
from hotdesk.admin.errors import InventoryError
from hotdesk.admin.inventory import DeviceSpec
from hotdesk.admin.pushes import Step, push_pnp, remove_from_rps, save_to_rps
from hotdesk.notify import outbox
from hotdesk.runtime import Runtime
from hotdesk.store import audit
from hotdesk.store.db import for_update, write_transaction
from hotdesk.store.models import Device, LoginAttempt, OutboxNotify, Session, Tenant, User, utcnow

__all__ = ["InventoryError", "PhoneResult", "Step", "UserResult"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhoneResult:
    device: Device
    notify: OutboxNotify | None  # the check-sync queued for the change
    steps: list[Step] = field(default_factory=list)


@dataclass(frozen=True)
class UserResult:
    user: User
    # Phones the change re-provisioned: sessions ended (back to idle) or new config.
    phones: list[int] = field(default_factory=list)
    notifies: list[OutboxNotify] = field(default_factory=list)
    new_pin: str = ""  # only from reset_pin, shown once


# -- check-sync ------------------------------------------------------------------------------


def _lock_tenant(tenant_id: int) -> Tenant:
    return for_update(Tenant.select().where(Tenant.id == tenant_id)).get()


def _queue(rt: Runtime, device_id: int, actor: str, bump: bool,
           endpoint: str | None = None) -> OutboxNotify | None:
    """Inside a write transaction: lock the tenant, then read the phone (never the other
    way round), bump its config version when asked and queue one check-sync to what it is
    registered as now (``endpoint`` when the caller knows better, e.g. before a rename)."""
    found = Device.get_or_none(Device.id == device_id)
    if found is None:
        return None
    tenant = _lock_tenant(found.tenant_id)
    device = Device.get_or_none(Device.id == device_id)
    if device is None:
        return None
    if endpoint is None:
        endpoint = inventory.registered_endpoint(device)
    if bump:
        Device.update(config_version=Device.config_version + 1).where(
            Device.id == device.id).execute()
        device.config_version += 1
    row = outbox.enqueue(device, tenant, endpoint, rt.config.switch.type, now=utcnow())
    audit.record("check_sync", tenant=tenant, actor=actor, device=device, outbox=row.id,
                 config_version=device.config_version)
    return row


def queue_checksync(rt: Runtime, device: Device, actor: str, bump: bool = False,
                    endpoint: str | None = None) -> OutboxNotify | None:
    """Queue a check-sync for ``device`` and return exactly the outbox row it wrote."""
    with write_transaction(rt.db):
        return _queue(rt, device.id, actor, bump, endpoint)


def push_checksync(rt: Runtime, devices: list[Device], actor: str) -> list[OutboxNotify]:
    return [row for d in devices if (row := queue_checksync(rt, d, actor)) is not None]


# -- phones ----------------------------------------------------------------------------------


def switch_step(rt: Runtime) -> Step:
    """Apply the idle accounts hotdesk manages to the switch now (or say who will)."""
    from hotdesk.switch.upkeep import apply_now

    ok, message = apply_now(rt.db, rt.config)
    return Step("switch", ok, f"switch: {message}")


def _after_phone_saved(rt: Runtime, device: Device, actor: str,
                       endpoint: str | None = None) -> PhoneResult:
    steps = [switch_step(rt)] if device.idle_managed else []
    row = queue_checksync(rt, device, actor, endpoint=endpoint)
    device = Device.get_by_id(device.id)
    steps += [Step("check-sync", row is not None,
                  f"configuration v{device.config_version} generated; check-sync NOTIFY "
                  f"queued (#{row.id})" if row else "check-sync NOTIFY not queued")]
    if device.method == "pnp":
        steps.append(push_pnp(rt.config, device))
    if device.method == "rps" or device.rps_enabled:
        steps.append(save_to_rps(rt.config, device, actor))
    return PhoneResult(device, row, steps)


def add_phone(rt: Runtime, tenant: Tenant, spec: DeviceSpec, actor: str) -> PhoneResult:
    """Register a phone (its idle account created on the switch when hotdesk manages
    them and no password was given), queue its check-sync, push its URL (PnP) or
    register it (RPS)."""
    from hotdesk.switch import idle_accounts

    spec = idle_accounts.prepare(spec, rt.config)
    if not spec.sip_password:
        raise InventoryError(idle_accounts.missing_password_hint(rt.config))
    device = inventory.add_device(rt.db, tenant, spec, actor=actor, config=rt.config)
    return _after_phone_saved(rt, device, actor)


def change_phone(rt: Runtime, device: Device, spec: DeviceSpec, actor: str) -> PhoneResult:
    """Save a phone (new config version); the NOTIFY goes to what it is registered as
    before the change (a renamed idle account only registers after the fetch)."""
    endpoint = inventory.registered_endpoint(device)
    updated = inventory.update_device(rt.db, device, spec, actor=actor)
    return _after_phone_saved(rt, updated, actor, endpoint=endpoint)


def remove_phone(rt: Runtime, device: Device, actor: str) -> list[Step]:
    """Deregister from RPS when it was registered there, log out whoever is on it, delete."""
    steps = []
    if device.rps_enabled or device.method == "rps":
        steps.append(remove_from_rps(rt.config, device, actor))
    inventory.delete_device(rt.db, rt.service, device, actor=actor, config=rt.config)
    if device.idle_managed:
        steps.append(switch_step(rt))
    return steps


# -- users -----------------------------------------------------------------------------------


def active_sessions(user: User) -> list[Session]:
    return list(Session.select().where((Session.user == user) & Session.ended_at.is_null())
                .order_by(Session.id))


def locked_until(rt: Runtime, user: User) -> datetime | None:
    """When the user's PIN lockout ends, or None when they are not locked out."""
    service = rt.service
    return service.locked_until(user, service.policy_for(user.tenant, user))


def _check_credentials_stored(rt: Runtime, sip_password: str | None) -> None:
    if sip_password and rt.config.switch.credentials == "switch":
        raise InventoryError("[switch] credentials = switch: the SIP password is read from "
                             "the switch, hotdesk does not store it; leave it empty (or set "
                             "credentials = hotdesk)")


def add_user(rt: Runtime, tenant: Tenant, extension: str, *, name: str = "",
             pin: str | None = None, sip_password: str = "", hotdesk: bool = False,
             sip_username: str = "", actor: str) -> UserResult:
    _check_credentials_stored(rt, sip_password)
    user = inventory.add_user(rt.db, tenant, extension, name=name, pin=pin,
                              sip_password=sip_password, hotdesk=hotdesk,
                              sip_username=sip_username, actor=actor)
    return UserResult(user)


def _end_sessions(rt: Runtime, user: User, reason: str, actor: str) -> list[int]:
    """Log the user out of every phone (each goes back to its idle profile + NOTIFY)."""
    ended = []
    for session in active_sessions(user):
        outcome = rt.service.logout(device_id=session.device_id, reason=reason, actor=actor,
                                    session_id=session.id)
        if outcome.value == "logged_out":
            ended.append(session.device_id)
    return ended


def change_user(rt: Runtime, user: User, *, name: str | None = None,
                sip_password: str | None = None, hotdesk: bool | None = None,
                pin: str | None = None, language: str | None = None,
                actor: str) -> UserResult:
    """Change the given fields (None = keep).

    A new SIP password or name for a logged-in user is part of their phones' configs:
    those get a new config version and a check-sync in the same transaction. Turning hot
    desking off ends the user's sessions (their phones go back to idle).
    """
    _check_credentials_stored(rt, sip_password)
    notifies: list[OutboxNotify] = []
    with write_transaction(rt.db):
        before = User.get_by_id(user.id)
        updated = inventory.update_user(rt.db, user, name=name, sip_password=sip_password,
                                        hotdesk=hotdesk, pin=pin, language=language,
                                        actor=actor)
        in_config = (updated.sip_password, updated.display_name, updated.language)
        if in_config != (before.sip_password, before.display_name, before.language):
            for session in active_sessions(updated):
                row = _queue(rt, session.device_id, actor, bump=True)
                if row is not None:
                    notifies.append(row)
        if pin:
            _clear_lockout(rt, updated, actor)
    phones = [row.device_id for row in notifies]
    if before.hotdesk_enabled and not updated.hotdesk_enabled:
        phones += _end_sessions(rt, updated, "user_disabled", actor)
    return UserResult(User.get_by_id(user.id), phones, notifies)


def set_hotdesk(rt: Runtime, user: User, enabled: bool, actor: str) -> UserResult:
    """Enable or disable hot desking; disabling logs the user out of every phone."""
    inventory.set_hotdesk(rt.db, user, enabled, actor=actor)
    phones = [] if enabled else _end_sessions(rt, user, "user_disabled", actor)
    return UserResult(User.get_by_id(user.id), phones)


def set_pin(rt: Runtime, user: User, pin: str, actor: str) -> UserResult:
    """A PIN an admin sets also lifts a lockout: the admin has just vouched for the user."""
    with write_transaction(rt.db):
        inventory.set_pin(rt.db, user, pin, actor=actor)
        _clear_lockout(rt, user, actor)
    return UserResult(User.get_by_id(user.id))


def reset_pin(rt: Runtime, user: User, actor: str) -> UserResult:
    with write_transaction(rt.db):
        new_pin = inventory.reset_pin(rt.db, user, actor=actor)
        _clear_lockout(rt, user, actor)
    return UserResult(User.get_by_id(user.id), new_pin=new_pin)


UNLOCKED = "wrong_pin_unlocked"


def _clear_lockout(rt: Runtime, user: User, actor: str) -> int:
    """Inside a write transaction: the failures that count towards the lockout stop
    counting. The rows stay (relabelled ``wrong_pin_unlocked``) as evidence."""
    _lock_tenant(user.tenant_id)
    policy = rt.service.policy_for(user.tenant, user)
    window = policy.lockout_window + policy.lockout_duration + timedelta(minutes=1)
    horizon = rt.service.clock() - window
    cleared = (LoginAttempt.update(result=UNLOCKED)
               .where((LoginAttempt.user == user) & (LoginAttempt.result == "wrong_pin")
                      & (LoginAttempt.at >= horizon)).execute())
    if cleared:
        audit.record("user_unlocked", tenant=user.tenant_id, actor=actor, user=user,
                     failures_cleared=cleared)
        log.info("user %s unlocked by %s (%d PIN failures cleared)", user.extension, actor,
                 cleared)
    return cleared


def unlock_user(rt: Runtime, user: User, actor: str) -> UserResult:
    """Lift a PIN lockout now (the user may log in again at once)."""
    with write_transaction(rt.db):
        _clear_lockout(rt, user, actor)
    return UserResult(User.get_by_id(user.id))


def remove_user(rt: Runtime, user: User, actor: str) -> None:
    inventory.delete_user(rt.db, rt.service, user, actor=actor)


def locked_users(rt: Runtime, users: list[User]) -> dict[int, datetime]:
    """``locked_until`` for a page of users: one query finds who has enough recent
    failures to be locked at all; only those get the exact check."""
    if not users:
        return {}
    p = rt.config.policy
    horizon = rt.service.clock() - timedelta(minutes=p.lockout_window_minutes
                                             + p.lockout_minutes)
    suspects = {a.user_id for a in LoginAttempt.select(LoginAttempt.user)
                .where(LoginAttempt.user.in_([u.id for u in users])
                       & (LoginAttempt.result == "wrong_pin") & (LoginAttempt.at >= horizon))
                .group_by(LoginAttempt.user)
                .having(fn.COUNT(LoginAttempt.id) >= p.lockout_failures)}
    out = {}
    for user in users:
        if user.id in suspects and (until := locked_until(rt, user)) is not None:
            out[user.id] = until
    return out
