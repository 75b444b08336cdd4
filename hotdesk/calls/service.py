"""The hot-desking rules, once, for every switch.

Adapters (FastAGI, Event Socket, web admin, CLI) call these functions; nothing here
knows which switch or protocol asked. Every state change runs in one write
transaction that writes the session row, the audit row and the outbox row together.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from peewee import Database

from hotdesk.calls import queries
from hotdesk.calls.writes import CallTransaction, CallWrites
from hotdesk.hashing import verify_pin
from hotdesk.notify import outbox
from hotdesk.settings import Config
from hotdesk.store.db import is_sqlite, write_transaction
from hotdesk.store.models import Device, Session, Tenant, User, utcnow

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


@dataclass(frozen=True)
class Phone:
    """The hot-desking phone a call comes from, as the call script sees it."""

    id: int
    mac: str
    tenant_id: int


@dataclass(frozen=True)
class Caller:
    """A user who may try to log in, and where their PIN lives."""

    user_id: int
    extension: str
    pin_on_switch: bool  # the voicemail PIN on the switch decides, not hotdesk's hash
    mailbox: str  # voicemail box on the switch (default: the extension)
    voicemail_context: str  # Asterisk voicemail context (default: "default")
    domain: str  # SIP domain (FreeSWITCH directory domain)


@dataclass(frozen=True)
class SwitchPin:
    """The voicemail PIN the switch holds for a user, read during the call. ``value``
    None: the switch has no mailbox or no PIN for them (they cannot log in)."""

    value: str | None

    def __repr__(self) -> str:  # never show the PIN, even in a traceback
        return f"SwitchPin({'set' if self.value else 'missing'})"


@dataclass(frozen=True)
class LoginResult:
    """What one PIN try did: the outcome, whether the PIN was wrong, whether this
    failure locked the user out (metrics and the audit read these, not guesses)."""

    outcome: Outcome
    pin_failed: bool = False
    locked_out: bool = False


# Checks a keyed PIN for a user against hotdesk's own hash ([policy] pin_source = hotdesk).
PinVerifier = Callable[[User, str], bool]


def _hash_verifier(user: User, pin: str) -> bool:
    return verify_pin(user.pin_hash, pin)


def pin_matches(expected: str | None, pin: str) -> bool:
    """Constant-time comparison of a keyed PIN with the switch's; no PIN never matches."""
    if not expected:
        return False
    return hmac.compare_digest(expected.encode(), pin.encode())


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
            tenant = queries.tenant_by_domain(self.db, domain)
            if tenant is not None:
                return tenant
            # An IP-addressed single-tenant PBX has "domains" that are just its addresses.
            if queries.tenant_count(self.db) > 1:
                return None
        return queries.default_tenant(self.db)

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

    def pin_on_switch(self, tenant: Tenant) -> bool:
        """Whose PIN decides: the tenant's own choice, else ``[policy] pin_source``."""
        return (tenant.pin_source or self.config.policy.pin_source) == "switch"

    def identify_phone(self, ctx: CallContext) -> Phone | Outcome:
        """Which hot-desking phone is calling, as the call script sees it."""
        device = self.identify_device(ctx)
        if not isinstance(device, Device):
            return device
        return Phone(id=device.id, mac=device.mac, tenant_id=device.tenant_id)

    def check_caller(self, phone: Phone, extension: str) -> Caller | Outcome:
        """May ``extension`` try to log in on ``phone``; where their PIN is read from."""
        state = queries.login_state(self.db, phone.id, extension, *self._lockout_reads(),
                                    sessions=False)
        if state is None:
            return Outcome.NOT_HOTDESK_PHONE
        device, user = state.device, state.user
        refused = self._refusal(device.tenant, user, state.attempts)
        if refused is not None:
            return refused
        assert user is not None
        return Caller(user_id=user.id, extension=user.extension,
                      pin_on_switch=self.pin_on_switch(device.tenant),
                      mailbox=user.voicemail_box or user.extension,
                      voicemail_context=user.voicemail_context or "default",
                      domain=device.tenant.sip_domain)

    def identify_device(self, ctx: CallContext) -> Device | Outcome:
        """Which hot-desking phone is calling? Never guesses: ambiguity is an outcome.
        Reads only: the address the call came from is stored by the login or logout
        that follows, inside its transaction."""
        device = queries.phone_at_endpoint(self.db, ctx.domain, ctx.endpoint)
        if device is not None:  # the common case, in one statement
            return device
        tenant = self.tenant_for(ctx.domain)
        if tenant is None:
            log.warning("call %s: SIP domain %r matches no tenant", ctx.call_id, ctx.domain)
            return Outcome.NOT_HOTDESK_PHONE
        device = queries.device_by_endpoint(self.db, tenant, ctx.endpoint)
        if device is not None:
            return device
        user = queries.user_by_endpoint(self.db, tenant.id, ctx.endpoint)
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

    def _refusal(self, tenant: Tenant, user: User | None,
                 attempts: list[tuple[datetime, bool]]) -> Outcome | None:
        if user is None:
            return Outcome.UNKNOWN_EXTENSION
        if not user.hotdesk_enabled:
            return Outcome.NOT_ENABLED
        if self.lockout_end(attempts, self.policy_for(tenant, user)) is not None:
            return Outcome.LOCKED
        return None

    def _lockout_reads(self) -> tuple[datetime, int]:
        """Since when and how many of a user's PIN tries the lockout rule reads."""
        p = self.config.policy
        window = timedelta(minutes=p.lockout_window_minutes + p.lockout_minutes)
        return self.clock() - window, p.lockout_failures

    def locked_until(self, user: User, policy: Policy) -> datetime | None:
        """End of the user's lockout, or None (reads their recent PIN tries)."""
        now = self.clock()
        horizon = now - policy.lockout_window - policy.lockout_duration
        recent = queries.recent_attempts(self.db, user.id, horizon, policy.lockout_failures)
        return self.lockout_end(recent, policy, now)

    def lockout_end(self, recent: list[tuple[datetime, bool]], policy: Policy,
                    now: datetime | None = None) -> datetime | None:
        """End of the lockout ``recent`` (the user's newest PIN tries, newest first)
        puts them under, or None.

        Locked when the newest ``lockout_failures`` failures since the last success all
        fall within ``lockout_window``; it lasts ``lockout_duration`` from the last one.
        Refused tries during a lockout are not failures, so they do not extend it.
        """
        now = now or self.clock()
        recent = recent[:policy.lockout_failures]
        if len(recent) < policy.lockout_failures or any(success for _, success in recent):
            return None
        newest, oldest = recent[0][0], recent[-1][0]
        if newest - oldest > policy.lockout_window:
            return None
        until = newest + policy.lockout_duration
        return until if now < until else None

    # -- state changes ----------------------------------------------------------------

    def login(self, device_id: int, extension: str, pin: str, ctx: CallContext,
              switch_pin: SwitchPin | None = None) -> LoginResult:
        """Check the PIN and, if right, make ``device`` the user's phone.

        ``switch_pin``: the voicemail PIN read from the switch during this call
        (``[policy] pin_source = switch``); None = hotdesk's own PIN hash decides.
        """
        pin_ok: bool | None = None
        seen: User | None = None
        if switch_pin is None:
            # argon2 runs before the write lock: it must not hold up every other login.
            # The lock then decides with that answer, so the lockout stays exact.
            seen = queries.user_at_device(self.db, device_id, extension)
            pin_ok = bool(seen and seen.hotdesk_enabled and _hash_verifier(seen, pin))
        with CallTransaction(self.db) as tx:
            state = self._lock_login(device_id, extension, tx)
            if state is None:
                return LoginResult(Outcome.NOT_HOTDESK_PHONE)
            user = state.user
            if user is None:
                return LoginResult(Outcome.UNKNOWN_EXTENSION)
            if not user.hotdesk_enabled:
                return LoginResult(Outcome.NOT_ENABLED)
            if switch_pin is not None:
                if switch_pin.value is None:
                    log.warning("call %s: user %s has no voicemail PIN on the switch "
                                "(mailbox %s@%s): they cannot log in until it has one",
                                ctx.call_id, extension, user.voicemail_box or extension,
                                user.voicemail_context or "default")
                pin_ok = pin_matches(switch_pin.value, pin)
            elif seen is None or seen.id != user.id or seen.pin_hash != user.pin_hash:
                pin_ok = _hash_verifier(user, pin)  # the PIN changed meanwhile: check again
            result = self._decide_login(state, user, bool(pin_ok), extension, ctx, tx.writes)
            tx.writes.flush()
        if result.outcome is Outcome.LOGGED_IN:
            device = state.device
            log.info("call %s: user %s logged in on %s (%s)", ctx.call_id, extension,
                     device.mac, device.display_name or device.idle_extension)
        return result

    def _decide_login(self, state: queries.LoginState, user: User, pin_ok: bool,
                      extension: str, ctx: CallContext, writes: CallWrites) -> LoginResult:
        """The login's rules on what ``state`` holds; its writes go to ``writes``."""
        device, tenant = state.device, state.device.tenant
        actor = f"caller:{extension}"
        self._note_address(device, ctx.source, writes)
        policy = self.policy_for(tenant, user)
        now = self.clock()
        until = self.lockout_end(state.attempts, policy, now)
        if until is not None:
            self._attempt(tenant, user, device, extension, "locked", ctx, writes)
            writes.audit("login_refused_locked", tenant=tenant, actor=actor, device=device,
                         user=user, call_id=ctx.call_id, locked_until=until.isoformat())
            return LoginResult(Outcome.LOCKED)
        if not pin_ok:
            return self._wrong_pin(state, user, extension, ctx, policy, writes)
        # The user's sessions elsewhere and whoever is on this phone, read with the rest.
        others = [s for s in state.sessions if s.user_id == user.id and s.device_id != device.id]
        current = next((s for s in state.sessions if s.device_id == device.id), None)
        if others and policy.multiple_login == "deny":
            self._attempt(tenant, user, device, extension, "already_logged_in", ctx, writes)
            writes.audit("login_denied_elsewhere", tenant=tenant, actor=actor,
                         device=device, user=user, call_id=ctx.call_id,
                         elsewhere=[s.device_mac for s in others])
            return LoginResult(Outcome.ALREADY_LOGGED_IN)
        if policy.multiple_login == "auto_logout":
            for other in others:
                self._end_session(other, "moved", actor, ctx.call_id, now, writes)
        # What the phone is registered as right now: the NOTIFY must reach that.
        endpoint = current.user.sip_username if current else device.idle_sip_username
        replaced = None
        if current is not None:
            replaced = current.user.extension if current.user_id != user.id else None
            self._close(current, "replaced" if replaced else "relogin", actor,
                        ctx.call_id, now, writes)
        expires = (now + timedelta(minutes=policy.max_login_minutes)
                   if policy.max_login_minutes > 0 else None)
        session_id = writes.insert_session(
            state.new_session_id, tenant=tenant.id, device=device.id, user=user.id,
            started=now, expires=expires, call_id=ctx.call_id)
        self._attempt(tenant, user, device, extension, "ok", ctx, writes)
        # The calling phone gets its NOTIFY once the confirmation prompt has played.
        self._reprovision(device, tenant, endpoint, now, writes, now_at=[user.sip_username],
                          delay=self.config.notify.call_grace_seconds)
        details = {"replaced": replaced} if replaced else {}
        writes.audit("login", tenant=tenant, actor=actor, device=device, user=user,
                     call_id=ctx.call_id, session=session_id, source=ctx.source, **details)
        return LoginResult(Outcome.LOGGED_IN)

    def _wrong_pin(self, state: queries.LoginState, user: User, extension: str,
                   ctx: CallContext, policy: Policy, writes: CallWrites) -> LoginResult:
        device, tenant = state.device, state.device.tenant
        at = self._attempt(tenant, user, device, extension, "wrong_pin", ctx, writes)
        writes.audit("pin_failed", tenant=tenant, actor=f"caller:{extension}", device=device,
                     user=user, call_id=ctx.call_id, source=ctx.source)
        # The tries as the database now holds them: this one is the newest id, so among
        # tries at the same moment it comes first (the order recent_attempts reads).
        tries = [(at, False, 1), *((t, ok, 0) for t, ok in state.attempts)]
        tries.sort(key=lambda t: (t[0], t[2]), reverse=True)
        until = self.lockout_end([(t, ok) for t, ok, _ in tries], policy)
        if until is not None:
            writes.audit("lockout", tenant=tenant, actor="system", device=device,
                         user=user, call_id=ctx.call_id, locked_until=until.isoformat(),
                         failures=policy.lockout_failures)
            log.warning("user %s locked out until %s after %d PIN failures",
                        extension, until.isoformat(timespec="seconds"),
                        policy.lockout_failures)
        return LoginResult(Outcome.WRONG_PIN, pin_failed=True, locked_out=until is not None)

    def logout(self, device_id: int, reason: str = "logout", actor: str = "system",
               call_id: str = "", session_id: int | None = None,
               source: str = "") -> Outcome:
        """End the device's session and put the idle profile back on it.

        ``session_id``: end only that session, so a background logout decided on an
        old session never ends a newer login that happened in between. ``source``: the
        ip:port a ``*71`` call came from (where the NOTIFY goes).
        """
        with write_transaction(self.db):
            device = self._lock_device(device_id)
            if device is None:
                return Outcome.NOT_HOTDESK_PHONE
            writes = CallWrites(self.db)
            self._note_address(device, source, writes)
            current = queries.session_on(self.db, device)
            if current is None or (session_id is not None and current.id != session_id):
                writes.flush()
                return Outcome.NOT_LOGGED_IN
            # *71 from the phone itself: NOTIFY once the caller has heard the prompt.
            delay = self.config.notify.call_grace_seconds if reason == "logout" else 0.0
            self._end_session(current, reason, actor, call_id, self.clock(), writes,
                              delay=delay)
            writes.flush()
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
            current = queries.session_on(self.db, device)
            endpoint = current.user.sip_username if current else device.idle_sip_username
            writes = CallWrites(self.db)
            self._reprovision(device, device.tenant, endpoint, self.clock(), writes,
                              now_at=[current.user.sip_username] if current else [], bump=False)
            writes.audit("check_sync", tenant=device.tenant, actor=actor, device=device)
            writes.flush()

    # -- helpers ----------------------------------------------------------------------

    def _lock_device(self, device_id: int) -> Device | None:
        """Lock, then read: the phone and its tenant, read after the lock so nothing
        decided on is stale (its config version, its address).

        SQLite: the surrounding BEGIN IMMEDIATE already holds the database's write lock.
        PostgreSQL: the phone's row is locked FOR UPDATE; changes of other phones go on.
        """
        if not is_sqlite(self.db):
            queries.LOCK_DEVICE.one(self.db, device=device_id)
        return queries.device_with_tenant(self.db, device_id)

    def _lock_login(self, device_id: int, extension: str,
                    tx: CallTransaction) -> queries.LoginState | None:
        """Lock what a login decides on, then read it: the user, then every phone
        involved (this one and those the user is logged in on), in id order.

        PostgreSQL only (SQLite's BEGIN IMMEDIATE serialises everything). Logins of
        other users on other phones go on in parallel. No deadlock: a transaction locks
        at most one user, before any phone, and phones in ascending id. Once the user is
        locked, their set of sessions can only shrink (a new one needs that lock), so
        the phones read after it are all the phones this login may change. Each step
        is a statement of its own: one statement sees the database as of its start, so
        what a lock waited for is seen only by the statements after it (they travel
        in one round trip all the same: hotdesk.calls.queries.locked_login_state).
        """
        if is_sqlite(self.db):
            return queries.login_state(self.db, device_id, extension, *self._lockout_reads())
        return queries.locked_login_state(self.db, device_id, extension,
                                          *self._lockout_reads(), execute=tx.execute)

    def _note_address(self, device: Device, source: str, writes: CallWrites) -> None:
        """The call came from this phone: its NOTIFY goes to that ip:port."""
        if source and device.last_address != source:
            writes.device(device.id, address=source)
            device.last_address = source

    def _end_session(self, session: Session, reason: str, actor: str, call_id: str,
                     now: datetime, writes: CallWrites, delay: float = 0.0) -> None:
        device = session.device
        self._close(session, reason, actor, call_id, now, writes)
        self._reprovision(device, device.tenant, session.user.sip_username, now, writes,
                          now_at=[], delay=delay)

    def _close(self, session: Session, reason: str, actor: str, call_id: str,
               now: datetime, writes: CallWrites) -> None:
        writes.close_session(session.id, now, reason)
        writes.audit("logout", tenant=session.tenant_id, actor=actor,
                     device=session.device_id, user=session.user_id, call_id=call_id,
                     reason=reason, session=session.id)

    def _reprovision(self, device: Device, tenant: Tenant, endpoint: str, now: datetime,
                     writes: CallWrites, now_at: list[str], bump: bool = True,
                     delay: float = 0.0) -> None:
        """New config version, NOTIFY to ``endpoint`` (what the phone is registered as)
        and the emergency marks of the accounts that moved: ``endpoint``, the phone's
        idle account and ``now_at``, whoever is logged in on it after this change."""
        if bump:
            writes.device(device.id, bump=True)
            device.config_version += 1
        writes.outbox(outbox.row(device, tenant, endpoint, self.config.switch.type, now=now,
                                 delay_seconds=delay))
        writes.mark(device.tenant_id, list(dict.fromkeys(
            [endpoint, device.idle_sip_username, *now_at])), now)

    def _attempt(self, tenant: Tenant, user: User, device: Device, extension: str, result: str,
                 ctx: CallContext, writes: CallWrites) -> datetime:
        """Record one PIN try; returns its time."""
        at = self.clock()
        writes.attempt(result == "ok", tenant=tenant.id, user=user.id, device=device.id,
                       extension=extension, result=result, source=ctx.source,
                       call_id=ctx.call_id, at=at)
        return at
