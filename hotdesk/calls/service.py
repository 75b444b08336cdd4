"""The hot-desking rules, once, for every switch.

Adapters (FastAGI, Event Socket, web admin, CLI) call these functions; nothing here
knows which switch or protocol asked. Every state change runs in one write
transaction that writes the session row, the audit row and the outbox row together.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from peewee import Database

from hotdesk.hashing import verify_pin
from hotdesk.notify import outbox
from hotdesk.settings import Config
from hotdesk.store import audit
from hotdesk.store.db import for_update, is_sqlite, write_transaction
from hotdesk.store.models import Device, LoginAttempt, Session, Tenant, User, utcnow

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    """Result of a call; the adapters set it as the dialplan variable HOTDESK_RESULT."""

    LOGGED_IN = "ok"
    LOGGED_OUT = "logged_out"
    WRONG_PIN = "wrong_pin"
    LOCKED = "locked"
    UNKNOWN_EXTENSION = "unknown_extension"
    NOT_ENABLED = "not_enabled"
    NOT_HOTDESK_PHONE = "not_hotdesk_phone"
    NOT_LOGGED_IN = "not_logged_in"
    AMBIGUOUS_DEVICE = "ambiguous_device"
    ALREADY_LOGGED_IN = "already_logged_in"
    NO_PIN = "no_pin"
    ERROR = "error"
    HANGUP = "hangup"


@dataclass(frozen=True)
class CallContext:
    """What a switch tells us about the calling phone."""

    switch: str  # "asterisk" | "freeswitch"
    call_id: str  # switch's unique id of the call, for logs and audit
    endpoint: str  # SIP user / endpoint the calling phone is registered as
    source: str = ""  # ip:port the call came from
    domain: str = ""  # SIP domain of the call; "" = default tenant


# Checks a keyed PIN for a user; the default compares with hotdesk's own hash.
PinVerifier = Callable[[User, str], bool]


def _hash_verifier(user: User, pin: str) -> bool:
    return verify_pin(user.pin_hash, pin)


@dataclass(frozen=True)
class Policy:
    multiple_login: str
    lockout_failures: int
    lockout_window: timedelta
    lockout_duration: timedelta
    max_login_minutes: int


class HotdeskService:
    """Login, logout and device identification over one database."""

    def __init__(self, db: Database, config: Config,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.config = config
        self.clock = clock

    # -- look-ups ---------------------------------------------------------------------

    def tenant_for(self, domain: str) -> Tenant | None:
        """The call's SIP domain selects the tenant; no domain means the default tenant."""
        if domain:
            tenant = Tenant.get_or_none(Tenant.sip_domain == domain)
            if tenant is not None:
                return tenant
            # An IP-addressed single-tenant PBX has "domains" that are just its addresses.
            if Tenant.select().count() > 1:
                return None
        return Tenant.get_or_none(Tenant.is_default == True)  # noqa: E712

    def policy_for(self, tenant: Tenant, user: User | None = None) -> Policy:
        p = self.config.policy
        minutes = p.max_login_minutes
        if tenant.max_login_minutes is not None:
            minutes = tenant.max_login_minutes
        if user is not None and user.max_login_minutes is not None:
            minutes = user.max_login_minutes
        return Policy(
            multiple_login=tenant.multiple_login or p.multiple_login,
            lockout_failures=p.lockout_failures,
            lockout_window=timedelta(minutes=p.lockout_window_minutes),
            lockout_duration=timedelta(minutes=p.lockout_minutes),
            max_login_minutes=minutes,
        )

    def identify_device(self, ctx: CallContext) -> Device | Outcome:
        """Which hot-desking phone is calling? Never guesses: ambiguity is an outcome."""
        tenant = self.tenant_for(ctx.domain)
        if tenant is None:
            log.warning("call %s: SIP domain %r matches no tenant", ctx.call_id, ctx.domain)
            return Outcome.NOT_HOTDESK_PHONE
        device = Device.get_or_none((Device.tenant == tenant)
                                    & ((Device.idle_sip_username == ctx.endpoint)
                                       | (Device.idle_extension == ctx.endpoint)))
        if device is not None:
            if ctx.source and device.last_address != ctx.source:
                Device.update(last_address=ctx.source).where(Device.id == device.id).execute()
                device.last_address = ctx.source
            return device
        user = User.get_or_none((User.tenant == tenant)
                                & ((User.sip_username == ctx.endpoint)
                                   | (User.extension == ctx.endpoint)))
        if user is None:
            log.info("call %s: endpoint %r is neither a hot-desk phone nor a user",
                     ctx.call_id, ctx.endpoint)
            return Outcome.NOT_HOTDESK_PHONE
        devices = [s.device for s in Session.select(Session, Device).join(Device)
                   .where((Session.user == user) & Session.ended_at.is_null())]
        if not devices:
            log.info("call %s: user %s is not logged in on any hot-desk phone",
                     ctx.call_id, user.extension)
            return Outcome.NOT_HOTDESK_PHONE
        return self._match_source(ctx, user, devices)

    def _match_source(self, ctx: CallContext, user: User,
                      devices: list[Device]) -> Device | Outcome:
        if ctx.source:
            exact = [d for d in devices if d.last_address == ctx.source]
            if len(exact) == 1:
                return exact[0]
            ip = ctx.source.rsplit(":", 1)[0]
            same_ip = [d for d in devices if d.last_address.rsplit(":", 1)[0] == ip]
            if len(same_ip) == 1:
                return same_ip[0]
            unknown = [d for d in devices if not d.last_address]
            if len(devices) == 1 and not unknown:
                log.warning("call %s: user %s calls from %s, but their hot-desk phone %s was "
                            "last seen at %s; not a hot-desk phone", ctx.call_id,
                            user.extension, ctx.source, devices[0].mac, devices[0].last_address)
                return Outcome.NOT_HOTDESK_PHONE
        if len(devices) == 1:
            return devices[0]
        log.warning("call %s: user %s is logged in on %d phones (%s) and source %r matches "
                    "none of them exactly once; refusing to guess", ctx.call_id, user.extension,
                    len(devices), ", ".join(d.mac for d in devices), ctx.source)
        return Outcome.AMBIGUOUS_DEVICE

    def find_user(self, device: Device, extension: str) -> User | Outcome:
        """The user behind a dialed extension, or why they cannot log in at all."""
        user = User.get_or_none((User.tenant == device.tenant_id) & (User.extension == extension))
        if user is None:
            return Outcome.UNKNOWN_EXTENSION
        if not user.hotdesk_enabled:
            return Outcome.NOT_ENABLED
        policy = self.policy_for(device.tenant, user)
        if self.locked_until(user, policy) is not None:
            return Outcome.LOCKED
        return user

    def locked_until(self, user: User, policy: Policy) -> datetime | None:
        """End of the user's lockout, or None.

        Locked when the newest ``lockout_failures`` failures since the last success all
        fall within ``lockout_window``; it lasts ``lockout_duration`` from the last one.
        Refused tries during a lockout are not failures, so they do not extend it.
        """
        now = self.clock()
        horizon = now - policy.lockout_window - policy.lockout_duration
        recent = list(LoginAttempt.select(LoginAttempt.at, LoginAttempt.success)
                      .where((LoginAttempt.user == user) & (LoginAttempt.at >= horizon)
                             & (LoginAttempt.result.in_(["ok", "wrong_pin"])))
                      .order_by(LoginAttempt.at.desc(), LoginAttempt.id.desc())
                      .limit(policy.lockout_failures))
        if len(recent) < policy.lockout_failures or any(a.success for a in recent):
            return None
        newest, oldest = recent[0].at, recent[-1].at
        if newest - oldest > policy.lockout_window:
            return None
        until = newest + policy.lockout_duration
        return until if now < until else None

    # -- state changes ----------------------------------------------------------------

    def login(self, device_id: int, extension: str, pin: str, ctx: CallContext,
              pin_verifier: PinVerifier | None = None) -> Outcome:
        """Check the PIN and, if right, make ``device`` the user's phone."""
        verifier = pin_verifier or _hash_verifier
        actor = f"caller:{extension}"
        # The PIN is checked before the write lock: argon2 (or a directory look-up over
        # the Event Socket) must not hold up every other login of the tenant. The lock
        # then decides with that answer, so the lockout count stays exact under races.
        seen = (User.select(User, Device.id).join(Device, on=(Device.tenant == User.tenant))
                .where((Device.id == device_id) & (User.extension == extension)).first())
        pin_ok = bool(seen and seen.hotdesk_enabled and verifier(seen, pin))
        with write_transaction(self.db):
            device = self._lock_device(device_id)
            if device is None:
                return Outcome.NOT_HOTDESK_PHONE
            tenant = device.tenant
            user = User.get_or_none((User.tenant == tenant) & (User.extension == extension))
            if user is None:
                return Outcome.UNKNOWN_EXTENSION
            if not user.hotdesk_enabled:
                return Outcome.NOT_ENABLED
            if seen is None or seen.id != user.id or seen.pin_hash != user.pin_hash:
                pin_ok = verifier(user, pin)  # the PIN changed meanwhile: check again
            policy = self.policy_for(tenant, user)
            now = self.clock()
            until = self.locked_until(user, policy)
            if until is not None:
                self._attempt(tenant, user, device, extension, "locked", ctx)
                audit.record("login_refused_locked", tenant=tenant, actor=actor, device=device,
                             user=user, call_id=ctx.call_id, locked_until=until.isoformat())
                return Outcome.LOCKED
            if not pin_ok:
                self._attempt(tenant, user, device, extension, "wrong_pin", ctx)
                audit.record("pin_failed", tenant=tenant, actor=actor, device=device,
                             user=user, call_id=ctx.call_id, source=ctx.source)
                until = self.locked_until(user, policy)
                if until is not None:
                    audit.record("lockout", tenant=tenant, actor="system", device=device,
                                 user=user, call_id=ctx.call_id, locked_until=until.isoformat(),
                                 failures=policy.lockout_failures)
                    log.warning("user %s locked out until %s after %d PIN failures",
                                extension, until.isoformat(timespec="seconds"),
                                policy.lockout_failures)
                return Outcome.WRONG_PIN
            # The user's sessions elsewhere and whoever is on this phone, in one query.
            active = list(Session.select(Session, User).join(User)
                          .where(Session.ended_at.is_null()
                                 & ((Session.user == user) | (Session.device == device))))
            others = [s for s in active if s.user_id == user.id and s.device_id != device.id]
            current = next((s for s in active if s.device_id == device.id), None)
            if others and policy.multiple_login == "deny":
                self._attempt(tenant, user, device, extension, "already_logged_in", ctx)
                audit.record("login_denied_elsewhere", tenant=tenant, actor=actor,
                             device=device, user=user, call_id=ctx.call_id,
                             elsewhere=[s.device.mac for s in others])
                return Outcome.ALREADY_LOGGED_IN
            if policy.multiple_login == "auto_logout":
                for other in others:
                    self._end_session(other, "moved", actor, ctx.call_id, now)
            # What the phone is registered as right now: the NOTIFY must reach that.
            endpoint = current.user.sip_username if current else device.idle_sip_username
            replaced = None
            if current is not None:
                replaced = current.user.extension if current.user_id != user.id else None
                self._close(current, "replaced" if replaced else "relogin", actor,
                            ctx.call_id, now)
            expires = (now + timedelta(minutes=policy.max_login_minutes)
                       if policy.max_login_minutes > 0 else None)
            session = Session.create(tenant=tenant, device=device, user=user, started_at=now,
                                     expires_at=expires, call_id=ctx.call_id)
            self._attempt(tenant, user, device, extension, "ok", ctx)
            # The calling phone gets its NOTIFY once the confirmation prompt has played.
            self._reprovision(device, tenant, endpoint, now,
                              delay=self.config.notify.call_grace_seconds)
            audit.record("login", tenant=tenant, actor=actor, device=device, user=user,
                         call_id=ctx.call_id, session=session.id, source=ctx.source,
                         replaced=replaced)
        log.info("call %s: user %s logged in on %s (%s)", ctx.call_id, extension, device.mac,
                 device.display_name or device.idle_extension)
        return Outcome.LOGGED_IN

    def logout(self, device_id: int, reason: str = "logout", actor: str = "system",
               call_id: str = "", session_id: int | None = None) -> Outcome:
        """End the device's session and put the idle profile back on it.

        ``session_id``: end only that session, so a background logout decided on an
        old session never ends a newer login that happened in between.
        """
        with write_transaction(self.db):
            device = self._lock_device(device_id)
            if device is None:
                return Outcome.NOT_HOTDESK_PHONE
            current = Session.get_or_none((Session.device == device)
                                          & Session.ended_at.is_null())
            if current is None or (session_id is not None and current.id != session_id):
                return Outcome.NOT_LOGGED_IN
            # *71 from the phone itself: NOTIFY once the caller has heard the prompt.
            delay = self.config.notify.call_grace_seconds if reason == "logout" else 0.0
            self._end_session(current, reason, actor, call_id, self.clock(), delay=delay)
        log.info("device %s logged out (%s by %s)", device.mac, reason, actor)
        return Outcome.LOGGED_OUT

    def expire_sessions(self) -> int:
        """End sessions past their expiry (max login time); returns how many."""
        now = self.clock()
        due = [(s.device_id, s.id) for s in Session.select(Session.id, Session.device)
               .where(Session.ended_at.is_null() & (Session.expires_at <= now))]
        return sum(self.logout(d, reason="expired", session_id=i) == Outcome.LOGGED_OUT
                   for d, i in due)

    def reprovision(self, device_id: int, actor: str = "system") -> None:
        """Push the device's current profile again (admin "check-sync")."""
        with write_transaction(self.db):
            device = self._lock_device(device_id)
            if device is None:
                return
            current = Session.get_or_none((Session.device == device)
                                          & Session.ended_at.is_null())
            endpoint = current.user.sip_username if current else device.idle_sip_username
            self._reprovision(device, device.tenant, endpoint, self.clock(), bump=False)
            audit.record("check_sync", tenant=device.tenant, actor=actor, device=device)

    # -- helpers ----------------------------------------------------------------------

    def _lock_device(self, device_id: int) -> Device | None:
        """Load the device and its tenant, serialised with every other change in the tenant.

        SQLite: the surrounding BEGIN IMMEDIATE already holds the database's write lock.
        PostgreSQL: the tenant row is locked FOR UPDATE, so concurrent logins in one
        tenant are decided one at a time.
        """
        device = (Device.select(Device, Tenant).join(Tenant)
                  .where(Device.id == device_id).first())
        if device is None:
            return None
        if not is_sqlite(self.db):
            for_update(Tenant.select(Tenant.id).where(Tenant.id == device.tenant_id)).get()
        return device

    def _end_session(self, session: Session, reason: str, actor: str, call_id: str,
                     now: datetime, delay: float = 0.0) -> None:
        device = session.device
        self._close(session, reason, actor, call_id, now)
        self._reprovision(device, device.tenant, session.user.sip_username, now, delay=delay)

    def _close(self, session: Session, reason: str, actor: str, call_id: str,
               now: datetime) -> None:
        Session.update(ended_at=now, end_reason=reason).where(Session.id == session.id).execute()
        audit.record("logout", tenant=session.tenant_id, actor=actor, device=session.device_id,
                     user=session.user_id, call_id=call_id, reason=reason, session=session.id)

    def _reprovision(self, device: Device, tenant: Tenant, endpoint: str, now: datetime,
                     bump: bool = True, delay: float = 0.0) -> None:
        if bump:
            Device.update(config_version=Device.config_version + 1).where(
                Device.id == device.id).execute()
            device.config_version += 1
        outbox.enqueue(device, tenant, endpoint, self.config.switch.type, now=now,
                       delay_seconds=delay)

    def _attempt(self, tenant: Tenant, user: User, device: Device, extension: str, result: str,
                 ctx: CallContext) -> None:
        LoginAttempt.create(tenant=tenant, user=user, device=device, extension=extension,
                            success=result == "ok", result=result, source=ctx.source,
                            call_id=ctx.call_id, at=self.clock())
