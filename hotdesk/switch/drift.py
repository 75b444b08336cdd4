"""Drift heals itself: a user's account changed on the switch reaches their phone.

Each rendered user config leaves the fingerprint of the account it carried on the
phone's row (:func:`hotdesk.provisioning.render.remember_fingerprint`). The worker
re-reads every logged-in user's account and, when the fingerprint differs from what
the phone has fetched, bumps the config version and queues a check-sync NOTIFY in one
transaction. Phones still fetching an older version are left alone (their next fetch
carries the live account anyway); so is a phone whose fingerprint is unknown.

The fingerprint is slow on purpose (about 10 ms), too slow to recompute for thousands
of logged-in users every tick: a :class:`FingerprintMemo` remembers, in this process
only, the fingerprint of what each phone's account was at the last check, and a tick
computes at most ``verify_budget`` new ones (the rest wait for the next tick), so a
worker starting over a large fleet checks it over its first few ticks.

The accounts themselves are read from the switch in one batch per tick
(:func:`hotdesk.switch.accounts.read_many`: pipelined on both switches), before the
comparison; each phone then sees exactly the answer, or the error, a read of its user's
account alone would have given. The switch's side still costs about 0.1-0.3 ms per
account, so a tick reads at most ``[switch] drift_reads_per_tick`` accounts, taking the
logged-in users in turn (:class:`Rotation`, by phone): a password changed on the switch
is seen within ceil(logged-in users / drift_reads_per_tick) ticks.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from peewee import Database

from hotdesk.notify import outbox
from hotdesk.provisioning.render import user_account
from hotdesk.settings import Config
from hotdesk.store import audit
from hotdesk.store.db import write_transaction
from hotdesk.store.models import Device, Session, Tenant, User, utcnow
from hotdesk.switch.accounts import (
    AccountError,
    AccountMissing,
    AccountReader,
    Credentials,
    PrefetchedReader,
    fingerprint,
    read_many,
)

log = logging.getLogger(__name__)


# Slow fingerprints computed per tick at most (the rest are checked on the next ticks).
VERIFY_BUDGET = 40


@dataclass
class DriftResult:
    checked: int = 0
    reprovisioned: int = 0
    problems: list[str] = field(default_factory=list)
    deferred: int = 0  # phones left for the next tick (verify budget used up)
    waiting: int = 0  # phones whose account is read on a later tick (read budget)


@dataclass
class Rotation:
    """Where the last bounded tick stopped: the next one reads the accounts of the
    phones after this one (by id), wrapping around (kept by the caller across ticks)."""

    after: int = 0


class FingerprintMemo:
    """Each phone's fingerprint for the account it was last checked with, in memory.

    Keyed by an HMAC under a random key of this process over what the fingerprint
    covers (account, password, name, the phone's salt): the same input gives the same
    fingerprint, so a hit is exact, and nothing derived from a password leaves the
    process or outlives it.
    """

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._seen: dict[int, tuple[bytes, str]] = {}

    def _digest(self, salt: str, account: tuple[str, str, str]) -> bytes:
        return hmac.new(self._key, "\x00".join((*account, salt)).encode(),
                        hashlib.sha256).digest()

    def known(self, device_id: int, salt: str, account: tuple[str, str, str]) -> str | None:
        """The fingerprint, when this phone was checked with exactly this account."""
        hit = self._seen.get(device_id)
        return hit[1] if hit is not None and hit[0] == self._digest(salt, account) else None

    def compute(self, device_id: int, salt: str, account: tuple[str, str, str]) -> str:
        auth_username, password, display_name = account
        value = fingerprint(Credentials(auth_username, password), display_name, salt)
        self._seen[device_id] = (self._digest(salt, account), value)
        return value


def heal(db: Database, config: Config, accounts: AccountReader | None,
         now: datetime | None = None, memo: FingerprintMemo | None = None,
         verify_budget: int | None = None, read_budget: int | None = None,
         rotation: Rotation | None = None) -> DriftResult:
    """Compare every current, fetched user config with the switch; re-provision drift.

    ``memo`` (kept by the caller across ticks) spares the slow fingerprint of accounts
    seen unchanged before; at most ``verify_budget`` are computed (None: no limit).
    At most ``read_budget`` accounts are read from the switch (None or 0: all), the
    phones after ``rotation`` first; phones whose password is stored are always checked.
    One query reads the columns the check needs; the phone is read whole only when
    it is re-provisioned.
    """
    result = DriftResult()
    memo = memo if memo is not None else FingerprintMemo()
    budget = verify_budget
    tenants = {t.id: t for t in Tenant.select()}
    rows = (Session.select(Device.id, Device.mac, Device.prov_token, Device.config_version,
                           Device.account_fingerprint, Session.tenant, User.id, User.extension,
                           User.sip_username, User.sip_password, User.display_name)
            .join(Device).switch(Session).join(User)
            .where(Session.ended_at.is_null() & (Device.account_fingerprint != "")
                   & (Device.fetched_version >= Device.config_version))
            .order_by(Device.id)
            .tuples())
    rows = list(rows)
    if read_budget and accounts is not None and config.switch.credentials == "switch":
        rows, result.waiting = _in_turn(rows, read_budget,
                                        rotation if rotation is not None else Rotation())
    reader = _prefetch(config, accounts, tenants, rows)
    for (device_id, mac, salt, version, stored, tenant_id, user_id, extension, sip_username,
         sip_password, display_name) in rows:
        user = User(__no_default__=True, id=user_id, extension=extension,
                    sip_username=sip_username, sip_password=sip_password,
                    display_name=display_name)
        tenant = tenants[tenant_id]
        result.checked += 1
        try:
            account = user_account(user, tenant, config, reader)
        except AccountMissing as exc:
            result.problems.append(f"user {extension}: {exc}")
            log.warning("drift check: user %s on phone %s: %s", extension, mac, exc)
            continue
        except AccountError as exc:
            result.problems.append(str(exc))
            log.warning("drift check stopped: %s", exc)
            if rotation is not None:
                rotation.after = device_id - 1  # the next tick starts at this phone
            break
        value = memo.known(device_id, salt, account)
        if value is None:
            if budget is not None and budget <= 0:
                result.deferred += 1
                continue
            value = memo.compute(device_id, salt, account)
            budget = None if budget is None else budget - 1
        if value == stored:
            continue
        with write_transaction(db):
            changed = (Device.update(config_version=Device.config_version + 1,
                                     account_fingerprint=value)
                       .where((Device.id == device_id) & (Device.config_version == version))
                       .execute())
            if not changed:
                continue  # the phone changed meanwhile (login, logout): that one wins
            device = Device.get_by_id(device_id)
            outbox.enqueue(device, tenant, sip_username, config.switch.type,
                           now=now or utcnow())
            audit.record("account_changed_on_switch", tenant=tenant, actor="worker",
                         device=device, user=user)
        result.reprovisioned += 1
        log.info("phone %s: the switch's account of user %s changed; re-provisioning "
                 "(config version %d)", mac, extension, version + 1)
    return result


def _in_turn(rows: list[tuple], budget: int,  # type: ignore[type-arg]
             rotation: Rotation) -> tuple[list[tuple], int]:  # type: ignore[type-arg]
    """This tick's rows: every one with a stored password, and ``budget`` of those read
    from the switch, the phones after ``rotation.after`` first; and how many wait."""
    live = [row for row in rows if not row[9]]  # column 9: the stored sip_password
    if len(live) <= budget:
        return rows, 0
    start = bisect.bisect_right([row[0] for row in live], rotation.after)
    taken = (live[start:] + live[:start])[:budget]
    rotation.after = taken[-1][0]
    chosen = {row[0] for row in taken} | {row[0] for row in rows if row[9]}
    return [row for row in rows if row[0] in chosen], len(live) - budget


def _prefetch(config: Config, accounts: AccountReader | None, tenants: dict[int, Tenant],
              rows: list[tuple]) -> AccountReader | None:  # type: ignore[type-arg]
    """The switch's answers for every row whose account is read live, in one batch."""
    if accounts is None or config.switch.credentials != "switch":
        return accounts
    # Columns: sip_username (8) and sip_password (9); a stored password wins (accounts.py).
    keys = list(dict.fromkeys((row[8], tenants[row[5]].sip_domain)
                              for row in rows if not row[9]))
    if not keys:
        return accounts
    return PrefetchedReader(dict(zip(keys, read_many(accounts, keys), strict=True)),
                            accounts)
