"""Web admin accounts, their API tokens, and a per-process failure counter.

Admins are either system administrators (every tenant) or tenant administrators (one
tenant). API tokens are random and long, so a plain SHA-256 of the token is stored:
a database dump never yields a usable token, and look-up stays a single indexed query.
A token has a name, an optional expiry and a last-used time; every token and every
signed-in browser of an admin ends when the password changes or the admin is disabled.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from peewee import Database

from hotdesk.hashing import hash_password, verify_password
from hotdesk.store import audit
from hotdesk.store.db import write_transaction
from hotdesk.store.models import Admin, AdminWebSession, ApiToken, Tenant, utcnow

TOKEN_PREFIX = "hd_"
MIN_PASSWORD_LENGTH = 10


class AdminError(ValueError):
    """Invalid or conflicting admin input; the message says what to fix."""


def create_admin(db: Database, username: str, password: str, tenant: Tenant | None = None,
                 actor: str = "system") -> Admin:
    """A system administrator when ``tenant`` is None, else that tenant's administrator."""
    username = (username or "").strip()
    if not username or len(username) > 64 or any(c.isspace() for c in username):
        raise AdminError("username must be 1 to 64 characters without spaces")
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise AdminError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    with write_transaction(db):
        if Admin.get_or_none(Admin.username == username):
            raise AdminError(f"admin {username} already exists")
        admin = Admin.create(username=username, password_hash=hash_password(password),
                             role="tenant" if tenant else "system", tenant=tenant)
        audit.record("admin_created", tenant=tenant, actor=actor, username=username,
                     role=admin.role)
    return admin


def set_password(db: Database, admin: Admin, password: str, actor: str = "system") -> None:
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise AdminError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    with write_transaction(db):
        Admin.update(password_hash=hash_password(password)).where(Admin.id == admin.id).execute()
        ended = _end_credentials(admin)
        audit.record("admin_password_changed", tenant=admin.tenant_id, actor=actor,
                     username=admin.username, **ended)


def set_disabled(db: Database, admin: Admin, disabled: bool, actor: str = "system") -> None:
    """Disable (ending every session and token) or enable an admin account."""
    with write_transaction(db):
        Admin.update(disabled=disabled).where(Admin.id == admin.id).execute()
        ended = _end_credentials(admin) if disabled else {}
        audit.record("admin_disabled" if disabled else "admin_enabled",
                     tenant=admin.tenant_id, actor=actor, username=admin.username, **ended)


def _end_credentials(admin: Admin) -> dict[str, int]:
    """Revoke every API token and end every web session of ``admin`` (inside a write)."""
    tokens = ApiToken.delete().where(ApiToken.admin == admin.id).execute()
    browsers = AdminWebSession.delete().where(AdminWebSession.admin == admin.id).execute()
    return {"tokens_revoked": tokens, "sessions_ended": browsers}


def check_password(username: str, password: str) -> Admin | None:
    """The admin if the password matches; verifies a dummy hash otherwise (same timing)."""
    admin = Admin.get_or_none(Admin.username == (username or "").strip())
    if admin is None or admin.disabled:
        verify_password(_dummy_hash(), password or "")
        return None
    return admin if verify_password(admin.password_hash, password or "") else None


@functools.cache
def _dummy_hash() -> str:
    # Made on first use, not at import: argon2 takes 64 MiB for a moment, and every
    # hotdesk process (FastAGI, Event Socket, worker) imports this module.
    return hash_password(secrets.token_hex(16))


def digest(secret: str) -> str:
    """SHA-256 hex of a random secret (token or session id): what the database keeps."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


MAX_TOKEN_NAME = 100
# Last-used times are written at most this often per token (not on every API call).
LAST_USED_EVERY = timedelta(seconds=60)


def create_token(db: Database, admin: Admin, label: str = "", actor: str = "system",
                 expires_at: datetime | None = None) -> str:
    """A new API token for ``admin`` named ``label``; only its hash is stored, so show
    it once. ``expires_at`` None = it never expires (until revoked or the password
    changes)."""
    label = "".join(ch for ch in (label or "") if ch.isprintable()).strip()
    if len(label) > MAX_TOKEN_NAME:
        raise AdminError(f"token name must be at most {MAX_TOKEN_NAME} characters")
    if expires_at is not None and expires_at <= utcnow():
        raise AdminError("the expiry must be in the future")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with write_transaction(db):
        ApiToken.create(admin=admin, token_hash=digest(token), label=label,
                        expires_at=expires_at)
        audit.record("api_token_created", tenant=admin.tenant_id, actor=actor,
                     username=admin.username, label=label,
                     expires=expires_at.isoformat(timespec="minutes") if expires_at
                     else "never")
    return token


def list_tokens(admin: Admin | None = None) -> list[ApiToken]:
    """Tokens of one admin (or all), newest first; expired ones included, marked by
    :func:`token_expired`."""
    query = ApiToken.select(ApiToken, Admin).join(Admin)
    if admin is not None:
        query = query.where(ApiToken.admin == admin.id)
    return list(query.order_by(ApiToken.created_at.desc(), ApiToken.id.desc()))


def token_expired(token: ApiToken, now: datetime | None = None) -> bool:
    return token.expires_at is not None and token.expires_at <= (now or utcnow())


def revoke_token(db: Database, token_id: int, actor: str = "system",
                 owner: Admin | None = None) -> ApiToken:
    """Delete token ``token_id`` (only among ``owner``'s tokens when given)."""
    with write_transaction(db):
        query = ApiToken.select().where(ApiToken.id == token_id)
        if owner is not None:
            query = query.where(ApiToken.admin == owner.id)
        token = query.first()
        if token is None:
            raise AdminError(f"no API token {token_id}")
        token.delete_instance()
        audit.record("api_token_revoked", tenant=token.admin.tenant_id, actor=actor,
                     username=token.admin.username, label=token.label, token_id=token_id)
    return token


def admin_for_token(token: str, now: datetime | None = None) -> Admin | None:
    """The admin a bearer token belongs to, if it is known, unexpired and its admin is
    enabled; records when it was last used."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    now = now or utcnow()
    row = ApiToken.get_or_none(ApiToken.token_hash == digest(token))
    if row is None or token_expired(row, now) or row.admin.disabled:
        return None
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_EVERY:
        ApiToken.update(last_used_at=now).where(ApiToken.id == row.id).execute()
    return row.admin


@dataclass
class SignInThrottle:
    """Refuses a key (a username or a client address) after repeated failures.

    Kept in memory: one ``hotdesk web`` process (waitress, many threads) shares it. With
    several processes each counts on its own, so the effective limit is multiplied by
    the number of processes; it also counts only after a check, so parallel tries race
    past it. Admin sign-in therefore uses the database-backed
    :class:`hotdesk.admin.signin_throttle.SharedSigninThrottle`; this one guards the
    FreeSWITCH directory endpoint's HTTP credentials.
    """

    max_failures: int = 5
    window: timedelta = timedelta(minutes=15)
    clock: Callable[[], datetime] = utcnow
    _failures: dict[str, deque[datetime]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _recent(self, key: str, now: datetime) -> deque[datetime]:
        q = self._failures.setdefault(key, deque())
        while q and now - q[0] > self.window:
            q.popleft()
        return q

    def blocked(self, username: str, address: str) -> bool:
        now = self.clock()
        with self._lock:
            return any(len(self._recent(k, now)) >= self.max_failures
                       for k in (f"u:{username.lower()}", f"a:{address}"))

    def failed(self, username: str, address: str) -> None:
        now = self.clock()
        with self._lock:
            for key in (f"u:{username.lower()}", f"a:{address}"):
                self._recent(key, now).append(now)
            if len(self._failures) > 10000:  # bound memory under a spray of usernames
                for key in [k for k, q in self._failures.items() if not q]:
                    del self._failures[key]

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(f"u:{username.lower()}", None)
