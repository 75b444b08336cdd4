"""Users and hot-desking phones: the stored records and their checks. Front ends call
:mod:`hotdesk.admin.usecases`, which adds what follows a change (check-sync, sessions
ended, PnP/RPS pushes). Errors are :class:`InventoryError` with a kind (invalid,
not_found, conflict) and a message an admin can act on."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass

from peewee import Database, IntegrityError

from hotdesk.admin import validation
from hotdesk.admin.errors import Conflict, InventoryError, NotFound
from hotdesk.calls.service import HotdeskService
from hotdesk.hashing import InvalidPin, hash_pin
from hotdesk.mac import InvalidMac, format_mac, normalise_mac
from hotdesk.provisioning.vendors import VENDORS
from hotdesk.settings import Config
from hotdesk.store import audit
from hotdesk.store.db import write_transaction
from hotdesk.store.models import Device, DiscoveredPhone, Session, Tenant, User
from hotdesk.switch import emergency

__all__ = ["Conflict", "DeviceSpec", "InventoryError", "NotFound"]

_HOSTPORT = re.compile(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:]+\](:[0-9]{1,5})?$")


@dataclass(frozen=True)
class DeviceSpec:
    mac: str
    extension: str
    sip_password: str
    vendor: str = "yealink"
    model: str = ""
    name: str = ""
    method: str = "pnp"
    network: str = "lan"
    sbc: str = ""
    sip_username: str = ""
    rps: bool = False
    # The idle account is created on the switch by hotdesk (hotdesk.switch.idle_accounts).
    idle_managed: bool = False

    # SIP transport of this phone (to the registrar, or to its SBC); "" = [provisioning]
    transport: str = ""


_check_extension = validation.extension
_check_sip_user = validation.sip_username


def default_tenant() -> Tenant:
    return Tenant.get(Tenant.is_default == True)  # noqa: E712


def add_user(db: Database, tenant: Tenant, extension: str, name: str = "",
             pin: str | None = None, sip_password: str = "", hotdesk: bool = False,
             sip_username: str = "", voicemail_box: str = "", voicemail_context: str = "default",
             language: str = "en", keys: list[dict[str, str]] | None = None,
             actor: str = "system") -> User:
    extension = _check_extension(extension)
    sip_username = _check_sip_user(sip_username or extension)
    name = validation.name(name)
    sip_password = validation.sip_password(sip_password)
    language = validation.language(language)
    try:
        pin_hash = hash_pin(pin) if pin else ""
    except InvalidPin as exc:
        raise InventoryError(str(exc)) from None
    with write_transaction(db):
        if User.get_or_none((User.tenant == tenant) & (User.extension == extension)):
            raise Conflict(f"extension {extension} already exists")
        if Device.get_or_none((Device.tenant == tenant) & (Device.idle_extension == extension)):
            raise Conflict(f"extension {extension} is a hot-desk phone's idle extension")
        try:
            user = User.create(tenant=tenant, extension=extension, display_name=name,
                               sip_username=sip_username, sip_password=sip_password,
                               pin_hash=pin_hash, hotdesk_enabled=hotdesk,
                               voicemail_box=voicemail_box or extension,
                               voicemail_context=voicemail_context, language=language,
                               keys_json=json.dumps(keys or []))
        except IntegrityError:
            raise Conflict(f"SIP username {sip_username} already exists") from None
        audit.record("user_added", tenant=tenant, actor=actor, user=user, extension=extension,
                     hotdesk=hotdesk)
    return user


def set_pin(db: Database, user: User, pin: str, actor: str = "system") -> None:
    try:
        pin_hash = hash_pin(pin)
    except InvalidPin as exc:
        raise InventoryError(str(exc)) from None
    with write_transaction(db):
        User.update(pin_hash=pin_hash).where(User.id == user.id).execute()
        audit.record("pin_changed", tenant=user.tenant_id, actor=actor, user=user)


def set_hotdesk(db: Database, user: User, enabled: bool, actor: str = "system") -> None:
    with write_transaction(db):
        User.update(hotdesk_enabled=enabled).where(User.id == user.id).execute()
        audit.record("hotdesk_enabled" if enabled else "hotdesk_disabled",
                     tenant=user.tenant_id, actor=actor, user=user)


def find_user(tenant: Tenant, extension: str) -> User:
    user = User.get_or_none((User.tenant == tenant) & (User.extension == extension))
    if user is None:
        raise NotFound(f"no user with extension {extension}")
    return user


def normalise_device_spec(spec: DeviceSpec) -> DeviceSpec:
    try:
        mac = normalise_mac(spec.mac)
    except InvalidMac as exc:
        raise InventoryError(str(exc)) from None
    vendor = (spec.vendor or "").lower()
    if vendor not in VENDORS:
        raise InventoryError(f"vendor {spec.vendor!r} is not one of {', '.join(sorted(VENDORS))}")
    if spec.method not in {"pnp", "rps"}:
        raise InventoryError("provisioning method must be pnp or rps")
    if spec.network not in {"lan", "sbc"}:
        raise InventoryError("network must be lan or sbc")
    sbc = spec.sbc.strip()
    if spec.network == "sbc" and not (sbc and _HOSTPORT.fullmatch(sbc)):
        raise InventoryError("network sbc needs the SBC address as HOST or HOST:PORT")
    sip_password = validation.sip_password(spec.sip_password, required=True)
    transport = (spec.transport or "").strip().lower()
    if transport not in {"", "udp", "tcp", "tls"}:
        raise InventoryError("transport must be udp, tcp or tls (empty = the site default)")
    extension = _check_extension(spec.extension)
    return DeviceSpec(mac=mac, extension=extension, sip_password=sip_password,
                      vendor=vendor, model=validation.text(spec.model, "model",
                                                           validation.MODEL_MAX),
                      name=validation.name(spec.name),
                      method=spec.method, network=spec.network,
                      sbc=sbc if spec.network == "sbc" else "",
                      sip_username=_check_sip_user(spec.sip_username or extension),
                      rps=spec.rps, idle_managed=spec.idle_managed, transport=transport)


def mac_taken(mac: str) -> str:
    """The refusal for a MAC already registered. MACs are unique across tenants, so a
    tenant administrator gets the same words whichever tenant holds it: nothing about
    the other tenant or its phone."""
    return (f"MAC {format_mac(mac)} is already registered to a phone (a MAC can belong "
            "to one phone only; if it is not in your list, ask a system administrator)")


def add_device(db: Database, tenant: Tenant, spec: DeviceSpec, actor: str = "system",
               config: Config | None = None) -> Device:
    """Register a hot-desking phone. It starts idle, on its own extension.

    A managed idle account is written to the switch's accounts file inside the same
    transaction (``config`` given): a file that cannot be written adds nothing."""
    spec = normalise_device_spec(spec)
    with write_transaction(db):
        if Device.get_or_none(Device.mac == spec.mac):
            raise Conflict(mac_taken(spec.mac))
        if Device.get_or_none((Device.tenant == tenant)
                              & (Device.idle_extension == spec.extension)):
            raise Conflict(f"extension {spec.extension} is already another phone's "
                           "idle extension")
        if User.get_or_none((User.tenant == tenant) & (User.extension == spec.extension)):
            raise Conflict(f"extension {spec.extension} belongs to a user")
        try:
            device = Device.create(
                tenant=tenant, mac=spec.mac, vendor=spec.vendor, model=spec.model,
                method=spec.method, network=spec.network, sbc_address=spec.sbc,
                display_name=spec.name, idle_extension=spec.extension,
                idle_sip_username=spec.sip_username, idle_sip_password=spec.sip_password,
                rps_enabled=spec.rps, idle_managed=spec.idle_managed,
                sip_transport=spec.transport)
        except IntegrityError:
            raise Conflict("MAC or extension already registered") from None
        if spec.idle_managed:
            _switch_accounts_changed(config)
        DiscoveredPhone.update(adopted=True).where(DiscoveredPhone.mac == spec.mac).execute()
        audit.record("device_added", tenant=tenant, actor=actor, device=device, mac=spec.mac,
                     extension=spec.extension, vendor=spec.vendor, method=spec.method)
    return device


def update_device(db: Database, device: Device, spec: DeviceSpec,
                  actor: str = "system") -> Device:
    spec = normalise_device_spec(spec)
    with write_transaction(db):
        clash = Device.get_or_none((Device.mac == spec.mac) & (Device.id != device.id))
        if clash:
            raise Conflict(mac_taken(spec.mac))
        clash = Device.get_or_none((Device.tenant == device.tenant_id)
                                   & (Device.idle_extension == spec.extension)
                                   & (Device.id != device.id))
        if clash:
            raise Conflict(f"extension {spec.extension} is already another phone's "
                           "idle extension")
        (Device.update(mac=spec.mac, vendor=spec.vendor, model=spec.model, method=spec.method,
                       network=spec.network, sbc_address=spec.sbc, display_name=spec.name,
                       idle_extension=spec.extension, idle_sip_username=spec.sip_username,
                       idle_sip_password=spec.sip_password, rps_enabled=spec.rps,
                       sip_transport=spec.transport,
                       config_version=Device.config_version + 1)
         .where(Device.id == device.id).execute())
        audit.record("device_changed", tenant=device.tenant_id, actor=actor, device=device,
                     mac=spec.mac)
        if device.idle_managed:
            _switch_accounts_changed(None)
        emergency.mark(device.tenant_id, device.idle_sip_username, spec.sip_username)
    return Device.get_by_id(device.id)


def delete_device(db: Database, service: HotdeskService, device: Device,
                  actor: str = "system", config: Config | None = None) -> None:
    """Remove a phone; a user logged in on it is logged out first (and audited)."""
    if Session.get_or_none((Session.device == device) & Session.ended_at.is_null()):
        service.logout(device.id, reason="device_deleted", actor=actor)
    with write_transaction(db):
        audit.record("device_deleted", tenant=device.tenant_id, actor=actor, mac=device.mac,
                     extension=device.idle_extension)
        device.delete_instance()
        if device.idle_managed:
            _switch_accounts_changed(config)
        emergency.mark(device.tenant_id, device.idle_sip_username)  # its entry goes too


def _switch_accounts_changed(config: Config | None) -> None:
    """Mark the switch's idle accounts for rewriting and, when this process writes the
    accounts file, write it now: an unwritable file aborts the caller's transaction."""
    from hotdesk.switch import idle_accounts

    idle_accounts.mark_changed()
    if config is not None:
        try:
            idle_accounts.write_accounts_file(config)
        except idle_accounts.SyncError as exc:
            raise InventoryError(f"nothing changed: {exc}") from None


def find_device(mac: str) -> Device:
    try:
        key = normalise_mac(mac)
    except InvalidMac as exc:
        raise InventoryError(str(exc)) from None
    device = Device.get_or_none(Device.mac == key)
    if device is None:
        raise NotFound(f"no hot-desking phone with MAC {mac}")
    return device


# -- changes made from the web admin and its API -------------------------------------------

_DAILY_TIME = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
MULTIPLE_LOGIN_CHOICES = ("auto_logout", "deny", "allow")


def update_user(db: Database, user: User, *, name: str | None = None,
                sip_password: str | None = None, hotdesk: bool | None = None,
                pin: str | None = None, language: str | None = None,
                actor: str = "system") -> User:
    """Change the given fields only (None = keep); the audit row lists field names only."""
    changes: dict[str, object] = {}
    if name is not None:
        changes["display_name"] = validation.name(name)
    if sip_password is not None and sip_password != "":
        changes["sip_password"] = validation.sip_password(sip_password)
    if hotdesk is not None:
        changes["hotdesk_enabled"] = bool(hotdesk)
    if language is not None:
        changes["language"] = validation.language(language)
    if pin:
        try:
            changes["pin_hash"] = hash_pin(pin)
        except InvalidPin as exc:
            raise InventoryError(str(exc)) from None
    if not changes:
        return user
    with write_transaction(db):
        User.update(**changes).where(User.id == user.id).execute()
        audit.record("user_changed", tenant=user.tenant_id, actor=actor, user=user,
                     fields=sorted(changes))
    return User.get_by_id(user.id)


def reset_pin(db: Database, user: User, actor: str = "system") -> str:
    """Give the user a new random 6-digit PIN and return it (shown once to the admin)."""
    pin = f"{secrets.randbelow(10**6):06d}"
    set_pin(db, user, pin, actor=actor)
    return pin


def delete_user(db: Database, service: HotdeskService, user: User,
                actor: str = "system") -> None:
    """Remove a user; phones they are logged in on go back to idle first (and are audited)."""
    for session in list(Session.select().where((Session.user == user)
                                               & Session.ended_at.is_null())):
        service.logout(session.device_id, reason="user_deleted", actor=actor)
    with write_transaction(db):
        audit.record("user_deleted", tenant=user.tenant_id, actor=actor,
                     extension=user.extension)
        user.delete_instance()


def set_tenant_policy(db: Database, tenant: Tenant, multiple_login: str,
                      max_login_minutes: int | None, daily_logout_time: str,
                      actor: str = "system") -> Tenant:
    """Per-tenant overrides of [policy]; "" / None means "use the config file's value"."""
    if multiple_login not in ("", *MULTIPLE_LOGIN_CHOICES):
        raise InventoryError(f"multiple login must be one of {', '.join(MULTIPLE_LOGIN_CHOICES)}")
    if max_login_minutes is not None and not 0 <= max_login_minutes <= 10080:
        raise InventoryError("maximum login time must be 0 to 10080 minutes (0 = no limit)")
    daily_logout_time = (daily_logout_time or "").strip()
    if daily_logout_time and not _DAILY_TIME.match(daily_logout_time):
        raise InventoryError("daily logout time must be HH:MM (24 h) or empty")
    with write_transaction(db):
        (Tenant.update(multiple_login=multiple_login, max_login_minutes=max_login_minutes,
                       daily_logout_time=daily_logout_time)
         .where(Tenant.id == tenant.id).execute())
        audit.record("tenant_policy_changed", tenant=tenant, actor=actor,
                     multiple_login=multiple_login, max_login_minutes=max_login_minutes,
                     daily_logout_time=daily_logout_time)
    return Tenant.get_by_id(tenant.id)


def registered_endpoint(device: Device) -> str:
    """What the phone is registered as right now: the logged-in user, else its idle account."""
    session = Session.get_or_none((Session.device == device) & Session.ended_at.is_null())
    return session.user.sip_username if session else device.idle_sip_username
