"""What the switch's own store must hold for emergency calls, and keeping it there.

The switch's emergency dialplan reads, locally and at once, an entry per account (the
SIP user / PJSIP endpoint a phone is registered as): the callback number and the
dispatchable location of the desk that account sits at right now. hotdesk is never
asked during the call; it only keeps those entries current.

Every change that moves an account (login, logout, auto-logout, a location edit)
*marks* the account in :class:`~hotdesk.emergency.models.EmergencySync`, inside the
change's own transaction. A drain (in ``hotdesk agi`` over AMI, in ``hotdesk esl``
over the Event Socket) then computes the entry from the database as it is *then* and
writes or deletes it, so an outage of hotdesk or of the switch link only delays the
catch-up, never reorders it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from peewee import Database, fn

from hotdesk.emergency import locations
from hotdesk.emergency.locations import Location
from hotdesk.emergency.models import EmergencySync
from hotdesk.store.compiled import Compiled
from hotdesk.store.db import current_database, is_sqlite, write_transaction
from hotdesk.store.models import Device, Session, Tenant, User, utcnow

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(minutes=5)


@dataclass(frozen=True)
class EntryKey:
    """Which entry: an account of a tenant, or (``endpoint`` "") the tenant's default."""

    endpoint: str
    domain: str  # the tenant's SIP domain
    default_tenant: bool


@dataclass(frozen=True)
class Entry:
    """What the switch holds for one account: empty ``callback`` keeps its caller ID."""

    callback: str
    civic: str  # PIDF-LO civic address (res_geolocation location_info)
    text: str  # the same location in one human line

    @classmethod
    def of(cls, location: Location) -> Entry:
        return cls(callback=location.callback, civic=location.civic(),
                   text=location.describe())


class StoreDown(Exception):
    """No connection to the switch: the mark stays, no attempt is used up."""


class StoreError(Exception):
    """The switch refused the write: retried with backoff."""


class StoreWriter(Protocol):
    """The switch-specific part: write (``entry``) or remove (None) one entry.

    A writer may also have ``write_many(items)`` (a list of (key, entry)): all in
    flight at once, one result per item in order, None or the exception ``write``
    would have raised; :func:`drain_once` then writes a round in one go."""

    def write(self, key: EntryKey, entry: Entry | None) -> None: ...


# -- the rule ------------------------------------------------------------------------

_IDLE_DESK = Compiled(
    lambda tenant, endpoint: Device.select(Device.id, Device.idle_sip_username)
    .where((Device.tenant == tenant) & (Device.idle_sip_username == endpoint)).limit(1),
    tenant=Device.tenant, endpoint=Device.idle_sip_username)
_SESSION_DESK = Compiled(
    lambda tenant, endpoint: Session.select(Device.id, Device.idle_sip_username)
    .join(Device).switch(Session).join(User)
    .where((Session.tenant == tenant) & Session.ended_at.is_null()
           & (User.sip_username == endpoint))
    .order_by(Session.started_at.desc(), Session.id.desc()).limit(1),
    tenant=Session.tenant, endpoint=User.sip_username)


def _desk(tenant_id: int, endpoint: str) -> tuple[int, str] | None:
    """(id, idle account) of the desk an account's emergency call comes from now: the
    desk whose idle account it is, else the desk of the user's newest active session.
    Compiled: the drain asks this for every account a login moves."""
    db = current_database()
    row = (_IDLE_DESK.one(db, tenant=tenant_id, endpoint=endpoint)
           or _SESSION_DESK.one(db, tenant=tenant_id, endpoint=endpoint))
    return (int(row[0]), row[1]) if row else None


def desk_of(tenant_id: int, endpoint: str) -> Device | None:
    """The desk an account's emergency call comes from now (see :func:`_desk`)."""
    desk = _desk(tenant_id, endpoint)
    return Device.get_or_none(Device.id == desk[0]) if desk else None


def entry_for(tenant_id: int, endpoint: str) -> Entry | None:
    """What the switch's store must hold for this account now; None = nothing (the
    dialplan then uses the tenant's default entry, then the account's own caller ID)."""
    if not endpoint:
        default = locations.tenant_location(tenant_id)
        return Entry.of(default) if default else None
    desk = _desk(tenant_id, endpoint)
    if desk is None:
        return None
    device_id, idle_account = desk
    if idle_account == endpoint and locations.desk_location(device_id) is None:
        return None  # the tenant default, which the dialplan reads by itself
    location = locations.effective_at(device_id, tenant_id)
    return Entry.of(location) if location else None


# -- marking (inside the caller's transaction) ---------------------------------------

def _mark_statement(force: bool) -> Compiled:
    """The upsert of one account's mark, compiled once: it runs on every login/logout."""
    update = {EmergencySync.pending: True, EmergencySync.stamp: EmergencySync.stamp + 1,
              EmergencySync.attempts: 0}
    if force:
        update[EmergencySync.held] = True
    return Compiled(
        lambda tenant, endpoint, now: EmergencySync.insert(
            tenant=tenant, endpoint=endpoint, pending=True, stamp=1, attempts=0,
            next_attempt_at=now, held=force)
        .on_conflict(conflict_target=[EmergencySync.tenant, EmergencySync.endpoint],
                     update={**update, EmergencySync.next_attempt_at: now}),
        tenant=EmergencySync.tenant, endpoint=EmergencySync.endpoint,
        now=EmergencySync.next_attempt_at)


_MARK = {False: _mark_statement(False), True: _mark_statement(True)}
MARK = _MARK[False]  # a login's or logout's mark (hotdesk.calls.writes)
_LOGGED_IN_AT = Compiled(
    lambda device: User.select(User.sip_username).join(Session)
    .where((Session.device == device) & Session.ended_at.is_null()), device=Session.device)


def mark(tenant_id: int, *endpoints: str, now: datetime | None = None,
         force: bool = False) -> None:
    """These accounts' entries must be rewritten; one upsert per account. ``force``:
    also remove what hotdesk does not know the switch holds (a full resync)."""
    now = now or utcnow()
    db = current_database()
    for endpoint in dict.fromkeys(endpoints):
        _MARK[force].run(db, tenant=tenant_id, endpoint=endpoint, now=now)


def endpoints_at(device: Device) -> list[str]:
    """The desk's idle account and the accounts logged in on it."""
    users = _LOGGED_IN_AT.rows(current_database(), device=device.id)
    return [device.idle_sip_username, *(row[0] for row in users)]


def mark_moved(device: Device, endpoint: str, now: datetime | None = None) -> None:
    """A login/logout on ``device``: the account it was registered as (``endpoint``),
    its idle account and whoever is logged in on it now."""
    mark(device.tenant_id, endpoint, *endpoints_at(device), now=now)


def mark_device(device: Device) -> None:
    mark(device.tenant_id, *endpoints_at(device))


def mark_tenant(tenant_id: int, force: bool = False) -> None:
    """Everything of a tenant (its default changed, or a full resync)."""
    accounts = [d.idle_sip_username for d in Device.select(Device.idle_sip_username)
                .where(Device.tenant == tenant_id)]
    accounts += [u.sip_username for u in User.select(User.sip_username).join(Session)
                 .where((Session.tenant == tenant_id) & Session.ended_at.is_null())]
    accounts += [r.endpoint for r in EmergencySync.select(EmergencySync.endpoint)
                 .where(EmergencySync.tenant == tenant_id)]  # every account ever written
    mark(tenant_id, "", *accounts, force=force)


# -- draining ------------------------------------------------------------------------

def _claim(limit: int, lease: timedelta, now: datetime) -> list[EmergencySync]:
    db = current_database()
    sql, params = _due_statement(limit).bind(db, now=now)
    with _one_commit_on_sqlite(db):
        return [row for row in list(EmergencySync.raw(sql, *params))
                if _CLAIM.run(db, id=row.id, stamp=row.stamp, until=now + lease,
                              now=now).rowcount == 1]


@functools.cache
def _due_statement(limit: int) -> Compiled:
    return Compiled(lambda now: EmergencySync.select().where(
        EmergencySync.pending & (EmergencySync.next_attempt_at <= now)
        & (EmergencySync.claimed_until.is_null() | (EmergencySync.claimed_until < now)))
        .order_by(EmergencySync.id).limit(limit), now=EmergencySync.next_attempt_at)


# Run for every account a login moves, so compiled once (hotdesk.store.compiled).
_CLAIM = Compiled(
    lambda id, stamp, until, now: EmergencySync.update(claimed_until=until)
    .where((EmergencySync.id == id) & (EmergencySync.stamp == stamp)
           & (EmergencySync.claimed_until.is_null() | (EmergencySync.claimed_until < now))),
    id=EmergencySync.id, stamp=EmergencySync.stamp, until=EmergencySync.claimed_until,
    now=EmergencySync.claimed_until)
_WRITTEN = {held: Compiled(
    lambda id, stamp, now, held=held: EmergencySync.update(
        pending=False, claimed_until=None, last_error="", written_at=now, held=held)
    .where((EmergencySync.id == id) & (EmergencySync.stamp == stamp)),
    id=EmergencySync.id, stamp=EmergencySync.stamp, now=EmergencySync.written_at)
    for held in (False, True)}
_RELEASE_NEWER = Compiled(
    lambda id, stamp: EmergencySync.update(claimed_until=None)
    .where((EmergencySync.id == id) & (EmergencySync.stamp != stamp)),
    id=EmergencySync.id, stamp=EmergencySync.stamp)


def drain_once(writer: StoreWriter, limit: int = 50, lease: timedelta = timedelta(seconds=30),
               now: datetime | None = None) -> dict[str, int]:
    """Write every due entry once; counts by result (written, retry, switch_down)."""
    now = now or utcnow()
    counts = {"written": 0, "retry": 0, "switch_down": 0}
    tenants: dict[int, Tenant] = {}
    claimed = _claim(limit, lease, now)
    plan: list[tuple[EntryKey, Entry | None] | None] = []  # None: nothing to write
    entries: list[Entry | None] = []
    for row in claimed:
        tenant = tenants.get(row.tenant_id) or Tenant.get_by_id(row.tenant_id)
        tenants[row.tenant_id] = tenant
        key = EntryKey(row.endpoint, tenant.sip_domain, bool(tenant.is_default))
        entry = entry_for(row.tenant_id, row.endpoint)
        entries.append(entry)
        plan.append((key, entry) if entry is not None or row.held else None)
    results = _write_all(writer, plan)
    with _one_commit_on_sqlite(current_database()):  # the round's outcomes
        failure = _record(claimed, entries, results, now, counts)
    if failure is not None:
        raise failure
    return counts


def _one_commit_on_sqlite(db: Database) -> contextlib.AbstractContextManager[None]:
    """A round's rows in one transaction on SQLite (one commit instead of one per
    account; its single writer cannot deadlock). Not on PostgreSQL: a transaction
    holding several of these rows deadlocks with a login marking the same accounts in
    another order (measured: 50 concurrent logins, "deadlock detected", a one-second
    stall), so there each statement commits alone, as before."""
    return write_transaction(db) if is_sqlite(db) else contextlib.nullcontext()


def _record(claimed: list[EmergencySync], entries: list[Entry | None],
            results: list[BaseException | None], now: datetime,
            counts: dict[str, int]) -> BaseException | None:
    """Write down what each claimed row's write did (see :func:`drain_once`); the
    failure that is neither the switch's absence nor its refusal, if one stopped it."""
    for index, (row, entry, error) in enumerate(zip(claimed, entries, results, strict=True)):
        if isinstance(error, StoreDown):
            counts["switch_down"] += 1
            rest = [r.id for r in claimed[index:]]
            EmergencySync.update(claimed_until=None).where(EmergencySync.id.in_(rest)).execute()
            log.debug("emergency entry %s waits for the switch: %s", row.endpoint, error)
            break
        if isinstance(error, StoreError):
            counts["retry"] += 1
            delay = min(timedelta(seconds=2 ** min(row.attempts, 10)), MAX_BACKOFF)
            (EmergencySync.update(attempts=row.attempts + 1, next_attempt_at=now + delay,
                                  claimed_until=None, last_error=str(error)[:500])
             .where(EmergencySync.id == row.id).execute())
            log.warning("the switch refused the emergency entry of %s: %s; retrying in %ds",
                        row.endpoint or "the tenant default", error, delay.total_seconds())
            continue
        if error is not None:
            return error  # raised once the rows before it are recorded; the rest
            # stay claimed until their lease ends
        counts["written"] += 1
        # Cleared only if no newer mark arrived while writing; otherwise it goes again.
        db = current_database()
        _WRITTEN[entry is not None].run(db, id=row.id, stamp=row.stamp, now=now)
        _RELEASE_NEWER.run(db, id=row.id, stamp=row.stamp)
    return None


def _write_all(writer: StoreWriter, plan: list[tuple[EntryKey, Entry | None] | None]
               ) -> list[BaseException | None]:
    """One result per planned item (None: written, or nothing to write). With
    ``write_many`` every write is in flight at once; otherwise one by one, and after a
    failure that is not the entry's own (no switch, a bug) the rest are not tried and
    carry that failure."""
    wanted = [item for item in plan if item is not None]
    write_many = getattr(writer, "write_many", None)
    if write_many is not None and wanted:
        done = iter(write_many(wanted))
        return [None if item is None else next(done) for item in plan]
    results: list[BaseException | None] = []
    stopped: BaseException | None = None
    for item in plan:
        if item is None or stopped is not None:
            results.append(stopped)
            continue
        try:
            writer.write(*item)
        except StoreError as exc:
            results.append(exc)
        except Exception as exc:  # noqa: BLE001 - handed back in order, raised there
            stopped = exc
            results.append(exc)
        else:
            results.append(None)
    return results


def pending_count() -> int:
    return EmergencySync.select(fn.COUNT(EmergencySync.id)).where(EmergencySync.pending).scalar()


def resync_all() -> int:
    """Mark every entry of every tenant (after restoring a switch, or a first install)."""
    with current_database().atomic():
        ids: Iterable[int] = [t.id for t in Tenant.select(Tenant.id)]
        for tenant_id in ids:
            mark_tenant(tenant_id, force=True)
    return pending_count()
