"""Users' SIP accounts as the switch holds them, read live when a config is rendered.

In ``[switch] credentials = switch`` mode hotdesk stores no user's SIP password: the
renderer asks an :class:`AccountReader` (AMI ``Getvar`` of ``AST_SORCERY`` on Asterisk,
``user_data`` on FreeSWITCH) and caches the answer for a few seconds. What a config
carried is remembered only as a :func:`fingerprint` (a salted slow hash), so the worker
can notice a password changed on the switch without hotdesk ever keeping it. Nothing
here logs a password; :class:`Credentials` hides it from ``repr``.

The worker reads every logged-in user's account each tick: :func:`read_many` asks a
reader that can for a whole batch at once (pipelined AMI ``Getvar`` / Event Socket
``api``), so a fleet costs a few round trips instead of one per user.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
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


class BatchReader(Protocol):
    """An AccountReader that also reads many accounts in one pipelined exchange."""

    def read(self, account: str, domain: str) -> Credentials: ...

    def read_many(self, keys: Sequence[tuple[str, str]]
                  ) -> list[Credentials | AccountError]: ...


ReadResult = Credentials | AccountError


def read_many(reader: AccountReader, keys: Sequence[tuple[str, str]]) -> list[ReadResult]:
    """Each (account, domain)'s credentials or the error reading it alone raises.

    A reader with ``read_many`` answers the batch at once; any other is asked one
    account at a time, and after an error that is not :class:`AccountMissing` (the
    switch is down or refused) the rest get that error without being asked.
    """
    many = getattr(reader, "read_many", None)
    if many is not None:
        return list(many(keys))
    out: list[ReadResult] = []
    for account, domain in keys:
        try:
            out.append(reader.read(account, domain))
        except AccountMissing as exc:
            out.append(exc)
        except AccountError as exc:
            return out + [exc] * (len(keys) - len(out))
    return out


class PrefetchedReader:
    """Answers from a batch read ahead of use (the same answer, or the same error, a
    single read would have given); accounts not in the batch go to ``inner``."""

    def __init__(self, answers: dict[tuple[str, str], ReadResult],
                 inner: AccountReader | None = None) -> None:
        self.answers = answers
        self.inner = inner

    def read(self, account: str, domain: str) -> Credentials:
        answer = self.answers.get((account, domain))
        if answer is None:
            if self.inner is None:
                raise AccountError(f"the account {account}@{domain} was not read")
            return self.inner.read(account, domain)
        if isinstance(answer, AccountError):
            raise answer
        return answer


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
        self._keep(key, now, creds)
        return creds

    def read_many(self, keys: Sequence[tuple[str, str]]) -> list[ReadResult]:
        """Fresh entries from the cache, the rest in one batch of the inner reader."""
        now = self.clock()
        out: dict[tuple[str, str], ReadResult] = {}
        for key in keys:
            hit = self._entries.get(key)
            if hit is not None and now - hit[0] < self.ttl:
                out[key] = hit[1]
        missing = list(dict.fromkeys(k for k in keys if k not in out))
        for key, result in zip(missing, read_many(self.inner, missing), strict=True):
            out[key] = result
            if isinstance(result, Credentials):
                self._keep(key, now, result)
        return [out[key] for key in keys]

    def _keep(self, key: tuple[str, str], now: float, creds: Credentials) -> None:
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[key] = (now, creds)

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
