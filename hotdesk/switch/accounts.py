"""Users' SIP accounts as the switch holds them, read live when a config is rendered.

In ``[switch] credentials = switch`` mode hotdesk stores no user's SIP password: the
renderer asks an :class:`AccountReader` (AMI ``Getvar`` of ``AST_SORCERY`` on Asterisk,
``user_data`` on FreeSWITCH) and caches the answer for a few seconds. What a config
carried is remembered only as a :func:`fingerprint` (a salted slow hash), so the worker
can notice a password changed on the switch without hotdesk ever keeping it. Nothing
here logs a password; :class:`Credentials` hides it from ``repr``.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from hotdesk.settings import Config
from hotdesk.store.models import Tenant, User


class AccountError(Exception):
    """The switch could not be read (down, refused, misconfigured); says what to change."""


class AccountMissing(AccountError):
    """The switch answered, but has no usable account for this user."""


@dataclass(frozen=True)
class Credentials:
    """What a phone needs to register as a user: the auth name and the password."""

    auth_username: str
    password: str = field(repr=False)


class AccountReader(Protocol):
    """Reads one account from the switch; raises AccountError / AccountMissing."""

    def read(self, account: str, domain: str) -> Credentials: ...


class CachedReader:
    """An AccountReader whose answers are reused for ``ttl`` seconds (errors are not)."""

    def __init__(self, inner: AccountReader, ttl: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], tuple[float, Credentials]] = {}

    def read(self, account: str, domain: str) -> Credentials:
        key = (account, domain)
        now = self.clock()
        hit = self._entries.get(key)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        creds = self.inner.read(account, domain)
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[key] = (now, creds)
        return creds

    def forget(self, account: str, domain: str) -> None:
        with self._lock:
            self._entries.pop((account, domain), None)


def fingerprint(creds: Credentials, display_name: str, salt: str) -> str:
    """A salted, slow hash of what a user's config carries (account and name).

    Stored per phone to detect drift; slow and salted so the column does not give the
    password away to someone reading the database.
    """
    material = "\x00".join((creds.auth_username, creds.password, display_name)).encode()
    return hashlib.pbkdf2_hmac("sha256", material, salt.encode(), 20_000, 16).hex()


def stored_credentials(user: User) -> Credentials | None:
    """The password kept with the user (``credentials = hotdesk``, or an install from
    before ``switch`` mode that still has one); None when there is none."""
    if user.sip_password:
        return Credentials(user.sip_username, user.sip_password)
    return None


def user_credentials(user: User, tenant: Tenant, config: Config,
                     reader: AccountReader | None) -> Credentials:
    """The account a user's config carries now.

    A password stored with the user wins (that is how an upgraded install keeps working
    unchanged; ``hotdesk doctor`` lists such users). Otherwise ``switch`` mode reads it
    live, and ``hotdesk`` mode renders the account without a password, as before.
    """
    stored = stored_credentials(user)
    if stored is not None:
        return stored
    if config.switch.credentials != "switch":
        return Credentials(user.sip_username, "")
    if reader is None:
        raise AccountError(f"cannot read the SIP account of {user.sip_username}: this process "
                           "has no switch connection configured ([ami] / [esl])")
    return reader.read(user.sip_username, tenant.sip_domain)
