"""Web admin accounts, API tokens and sign-in throttling.

Admins are either system administrators (every tenant) or tenant administrators (one
tenant). API tokens are random and long, so a plain SHA-256 of the token is stored:
a database dump never yields a usable token, and look-up stays a single indexed query.
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
from hotdesk.store.models import Admin, ApiToken, Tenant, utcnow

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
        audit.record("admin_password_changed", tenant=admin.tenant_id, actor=actor,
                     username=admin.username)


def check_password(username: str, password: str) -> Admin | None:
    """The admin if the password matches; verifies a dummy hash otherwise (same timing)."""
    admin = Admin.get_or_none(Admin.username == (username or "").strip())
    if admin is None:
        verify_password(_dummy_hash(), password or "")
        return None
    return admin if verify_password(admin.password_hash, password or "") else None


@functools.cache
def _dummy_hash() -> str:
    # Made on first use, not at import: argon2 takes 64 MiB for a moment, and every
    # hotdesk process (FastAGI, Event Socket, worker) imports this module.
    return hash_password(secrets.token_hex(16))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(db: Database, admin: Admin, label: str = "", actor: str = "system") -> str:
    """A new API token for ``admin``; only its hash is stored, so show it once."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with write_transaction(db):
        ApiToken.create(admin=admin, token_hash=_digest(token), label=label[:100])
        audit.record("api_token_created", tenant=admin.tenant_id, actor=actor,
                     username=admin.username, label=label[:100])
    return token


def admin_for_token(token: str) -> Admin | None:
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = ApiToken.get_or_none(ApiToken.token_hash == _digest(token))
    if row is None:
        return None
    ApiToken.update(last_used_at=utcnow()).where(ApiToken.id == row.id).execute()
    return row.admin


@dataclass
class SignInThrottle:
    """Refuses sign-in for a username or a client address after repeated failures.

    Kept in memory: one ``hotdesk web`` process (waitress, many threads) shares it. With
    several processes behind a balancer each counts on its own, so the effective limit
    is multiplied by the number of processes.
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
