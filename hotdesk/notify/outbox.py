"""The durable NOTIFY outbox: rows are written with the state change, sent later by a sender.

A sender is the switch-specific part (AMI in hotdesk_agi, the inbound Event Socket in
esl_handlers). The outbox only knows when to try, whom to try, and what happened.
Claims are a conditional UPDATE (on PostgreSQL one UPDATE over a ``SELECT … FOR UPDATE
SKIP LOCKED``), so several hotdesk processes can drain one outbox without sending a
row twice.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from peewee import Case, InterfaceError, OperationalError, PostgresqlDatabase

from hotdesk.provisioning.vendors import get_vendor
from hotdesk.settings import NotifyConfig
from hotdesk.store.compiled import Compiled, inserted_id
from hotdesk.store.db import current_database
from hotdesk.store.models import Device, OutboxNotify, Tenant, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NotifyTarget:
    """Exactly one phone to send a check-sync NOTIFY to."""

    outbox_id: int
    endpoint: str  # SIP user / PJSIP endpoint the phone is registered as
    domain: str  # SIP domain (FreeSWITCH host); "" for Asterisk
    contact_uri: str  # sip:user@ip:port of this phone when known, else ""
    event: str  # e.g. "check-sync;reboot=false"
    created_at: datetime | None = None  # when the row was queued (the queue-delay metric)


class NotifyError(Exception):
    """The switch refused or could not be reached; the row is retried later."""


class SwitchDown(NotifyError):
    """No connection to the switch: the row stays queued without using up an attempt."""


class NotifySender(Protocol):
    def send(self, target: NotifyTarget) -> None: ...


class PipelinedSender(NotifySender, Protocol):
    """A sender that can have a whole batch in flight on its connection at once.

    ``send_many`` returns one entry per target, in order: None (the switch took it) or
    the exception ``send`` would have raised for it. :func:`drain_once` uses it when a
    sender has it: one claim, one round of sends, one statement marking the sent rows.
    """

    def send_many(self, targets: Sequence[NotifyTarget]) -> list[BaseException | None]: ...


def contact_uri_for(endpoint: str, address: str) -> str:
    return f"sip:{endpoint}@{address}" if endpoint and address else ""


def row(device: Device, tenant: Tenant, endpoint: str, switch: str,
        now: datetime | None = None, delay_seconds: float = 0.0) -> dict[str, Any]:
    """The values of the row :func:`enqueue` writes (for :data:`INSERT`)."""
    now = now or utcnow()
    # Earlier pending rows for the phone stay: each targets the registration the phone
    # had then, and an extra check-sync costs the phone one fetch.
    return dict(tenant=tenant.id, device=device.id, switch=switch, endpoint=endpoint,
                domain=tenant.sip_domain,
                contact_uri=contact_uri_for(endpoint, device.last_address),
                event=get_vendor(device.vendor).notify_event,
                config_version=device.config_version,
                next_attempt_at=now + timedelta(seconds=delay_seconds), created_at=now)


def enqueue(device: Device, tenant: Tenant, endpoint: str, switch: str,
            now: datetime | None = None, delay_seconds: float = 0.0) -> OutboxNotify:
    """Queue a check-sync for ``device``, addressed to the registration it has right now,
    due after ``delay_seconds``."""
    values = row(device, tenant, endpoint, switch, now, delay_seconds)
    db = current_database()
    row_id = inserted_id(db, INSERT.run(db, **values))
    return OutboxNotify(__no_default__=True, id=row_id, status="pending", attempts=0, **values)


def enqueue_many(phones: list[tuple[Device, Tenant, str]], switch: str,
                 now: datetime) -> dict[int, int]:
    """Queue a paced push's check-sync for each (device, tenant, endpoint), each device at
    most once, due now and drained after ordinary rows; returns {device id: outbox id}.
    One statement on PostgreSQL (a tick's batch), a row at a time elsewhere."""
    values = [dict(row(d, t, e, switch, now), paced=True) for d, t, e in phones]
    if isinstance(current_database(), PostgresqlDatabase) and phones:
        rows = (OutboxNotify.insert_many(values)
                .returning(OutboxNotify.id, OutboxNotify.device).execute())
        return {r.device_id: r.id for r in rows}
    return {v["device"]: OutboxNotify.insert(**v).execute() for v in values}


# Written by every login and logout, so compiled once (hotdesk.store.compiled).
INSERT = Compiled(
    lambda **v: OutboxNotify.insert(**v),
    **{name: getattr(OutboxNotify, name) for name in (
        "tenant", "device", "switch", "endpoint", "domain", "contact_uri", "event",
        "config_version", "next_attempt_at", "created_at")})


# UPDATE … RETURNING: SQLite 3.35 (2021) and later; older ones claim row by row.
SQLITE_RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)
# Rows of a paced push go after every other due row (NULL = ordinary: first).
_PUSHED_LAST = Case(None, [(OutboxNotify.paced == True, 1)], 0)  # noqa: E712


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def claim_due(limit: int, owner: str, lease: timedelta = timedelta(seconds=30),
              now: datetime | None = None) -> list[OutboxNotify]:
    """Claim up to ``limit`` due rows for ``owner``; safe across processes and nodes.

    Each returned row carries its claim: ``claimed_by`` = owner and ``claimed_until``,
    the stamp :func:`renew_claim`, :func:`mark_sent` and :func:`mark_failed` check.
    """
    now = now or utcnow()
    db = current_database()
    postgres = isinstance(db, PostgresqlDatabase)
    if postgres or SQLITE_RETURNING:
        sql, params = _claim_statement(limit, postgres).bind(
            db, owner=owner, until=now + lease, now=now)
        return sorted(OutboxNotify.raw(sql, *params), key=lambda r: (bool(r.paced), r.id))
    claimed: list[OutboxNotify] = []
    for row in list(_due(now).order_by(_PUSHED_LAST, OutboxNotify.id).limit(limit)):
        taken = (OutboxNotify.update(claimed_by=owner, claimed_until=now + lease)
                 .where((OutboxNotify.id == row.id) & (OutboxNotify.status == "pending")
                        & (OutboxNotify.claimed_until.is_null()
                           | (OutboxNotify.claimed_until < now)))
                 .execute())
        if taken == 1:
            claimed.append(OutboxNotify.get_by_id(row.id))
    return claimed


def _due(now: datetime):  # type: ignore[no-untyped-def]
    return OutboxNotify.select(OutboxNotify.id).where(
        (OutboxNotify.status == "pending") & (OutboxNotify.next_attempt_at <= now)
        & (OutboxNotify.claimed_until.is_null() | (OutboxNotify.claimed_until < now)))


@functools.cache
def _claim_statement(limit: int, postgres: bool) -> Compiled:
    """The one-statement claim, compiled once per batch size (every drain round runs it).

    PostgreSQL: drainers on other nodes skip the rows this one is locking instead of
    queueing behind it and then finding them taken. SQLite runs the statement under its
    write lock from start to end, so no other process can claim a row between the inner
    SELECT and the UPDATE; the outer condition repeats the test all the same."""
    def build(owner: str, until: datetime, now: datetime):  # type: ignore[no-untyped-def]
        due = _due(now).order_by(_PUSHED_LAST, OutboxNotify.id).limit(limit)
        where = (OutboxNotify.id.in_(due.for_update(skip_locked=True)) if postgres
                 else OutboxNotify.id.in_(due) & (OutboxNotify.status == "pending")
                 & (OutboxNotify.claimed_until.is_null() | (OutboxNotify.claimed_until < now)))
        return (OutboxNotify.update(claimed_by=owner, claimed_until=until).where(where)
                .returning(OutboxNotify))
    return Compiled(build, owner=OutboxNotify.claimed_by, until=OutboxNotify.claimed_until,
                    now=OutboxNotify.next_attempt_at)


def _still_claimed(row: OutboxNotify, owner: str):  # type: ignore[no-untyped-def]
    """The row is pending and still in exactly the claim ``row`` was handed out with.

    Another drainer that took the row after the lease ran out wrote its own
    ``claimed_by``/``claimed_until``; the worker's tidy-up cleared ``claimed_until``.
    Either way the claim stamp no longer matches and this drainer must not touch it.
    """
    return ((OutboxNotify.id == row.id) & (OutboxNotify.status == "pending")
            & (OutboxNotify.claimed_by == owner)
            & (OutboxNotify.claimed_until == row.claimed_until))


def renew_claim(row: OutboxNotify, owner: str, lease: timedelta,
                now: datetime | None = None) -> bool:
    """Extend the claim on ``row`` by ``lease`` from now; False if it is no longer ours.

    Called before a send when the claim is running short, so a batch may take longer
    than the lease: such a row is re-checked and held for one full lease while sent.
    """
    # max(): with a fixed clock (tests) the stamp stays as it is and still matches.
    until = max((now or utcnow()) + lease, row.claimed_until)
    renewed = (OutboxNotify.update(claimed_until=until)
               .where(_still_claimed(row, owner)).execute())
    if renewed == 1:
        row.claimed_until = until
    return renewed == 1


def target_of(row: OutboxNotify) -> NotifyTarget:
    return NotifyTarget(outbox_id=row.id, endpoint=row.endpoint, domain=row.domain,
                        contact_uri=row.contact_uri, event=row.event,
                        created_at=row.created_at)


def mark_sent(row: OutboxNotify, owner: str, now: datetime | None = None) -> bool:
    """Record the send; False (nothing written) when the claim was lost meanwhile."""
    return (OutboxNotify.update(status="sent", sent_at=now or utcnow(),
                                attempts=OutboxNotify.attempts + 1,
                                claimed_until=None, last_error="")
            .where(_still_claimed(row, owner)).execute()) == 1


def mark_sent_many(rows: Sequence[OutboxNotify], owner: str,
                   now: datetime | None = None) -> set[int]:
    """:func:`mark_sent` for a batch in one statement per claim stamp (a fresh batch
    has one); the ids written, so a row whose claim was lost is known and untouched."""
    now = now or utcnow()
    db = current_database()
    if not rows or not (isinstance(db, PostgresqlDatabase) or SQLITE_RETURNING):
        return {row.id for row in rows if mark_sent(row, owner, now)}
    by_stamp: dict[datetime, list[int]] = {}
    for row in rows:
        by_stamp.setdefault(row.claimed_until, []).append(row.id)
    written: set[int] = set()
    for stamp, ids in by_stamp.items():
        statement = _mark_sent_statement(len(ids))
        cursor = statement.run(db, owner=owner, stamp=stamp, now=now,
                               **{f"id{i}": row_id for i, row_id in enumerate(ids)})
        written.update(int(row[0]) for row in cursor.fetchall())
    return written


@functools.cache
def _mark_sent_statement(count: int) -> Compiled:
    """:func:`mark_sent` of ``count`` rows of one claim, compiled once per count."""
    def build(owner: str, stamp: datetime, now: datetime, **ids: int):  # type: ignore[no-untyped-def]
        return (OutboxNotify.update(status="sent", sent_at=now,
                                    attempts=OutboxNotify.attempts + 1,
                                    claimed_until=None, last_error="")
                .where(OutboxNotify.id.in_(list(ids.values()))
                       & (OutboxNotify.status == "pending")
                       & (OutboxNotify.claimed_by == owner)
                       & (OutboxNotify.claimed_until == stamp))
                .returning(OutboxNotify.id))
    return Compiled(build, owner=OutboxNotify.claimed_by, stamp=OutboxNotify.claimed_until,
                    now=OutboxNotify.sent_at,
                    **{f"id{i}": OutboxNotify.id for i in range(count)})


def mark_failed(row: OutboxNotify, owner: str, error: str, policy: NotifyConfig,
                count_attempt: bool = True, now: datetime | None = None) -> str | None:
    """Reschedule with exponential backoff, or give up after ``max_attempts``.

    Returns the new status, or None when the claim was lost (nothing written).
    ``row.attempts`` is exact here: only the holder of the claim writes the row.
    """
    now = now or utcnow()
    attempts = row.attempts + (1 if count_attempt else 0)
    status = "failed" if attempts >= policy.max_attempts else "pending"
    delay = min(policy.backoff_seconds * (2 ** max(attempts - 1, 0)), policy.backoff_max_seconds)
    written = (OutboxNotify.update(status=status, attempts=attempts, last_error=error[:500],
                                   claimed_until=None,
                                   next_attempt_at=now + timedelta(seconds=delay))
               .where(_still_claimed(row, owner)).execute())
    return status if written == 1 else None


def drain_once(sender: NotifySender, policy: NotifyConfig, owner: str, limit: int = 50,
               now: datetime | None = None) -> dict[str, int]:
    """Send every due row once; returns counts by result. Never raises for a send error.

    Before each send the row's claim is renewed once less than two thirds of its lease
    is left (:func:`renew_claim`), so a row whose lease ran out while earlier rows were
    slow, and that another drainer took meanwhile, is left to that drainer instead of
    being sent twice. A :class:`PipelinedSender` gets the whole batch at once (every
    row checked first, all sends in flight together, the sent rows marked in one
    statement); any other sender gets one row at a time.
    """
    lease = timedelta(seconds=policy.lease_seconds)
    counts = {"sent": 0, "retry": 0, "failed": 0, "switch_down": 0}
    rows = claim_due(limit, owner, lease, now=now)
    send_many: Callable[[Sequence[NotifyTarget]], list[BaseException | None]] | None = \
        getattr(sender, "send_many", None)
    if send_many is not None:
        _send_batch(send_many, rows, policy, owner, lease, now, counts)
        return counts
    for index, row in enumerate(rows):
        if not _held_for_a_send(row, owner, lease, now):
            log.info("NOTIFY row %d was taken over by another drainer; leaving it", row.id)
            continue
        try:
            sender.send(target_of(row))
        except SwitchDown as exc:
            _switch_down(row, exc, rows[index + 1:], policy, owner, now, counts)
            break
        except (OperationalError, InterfaceError):
            raise  # the database, not the row: the drain loop waits and retries
        except Exception as exc:  # noqa: BLE001 - a bad row must not stop the rows after it
            _refused(row, exc, policy, owner, now, counts)
        else:
            if not mark_sent(row, owner, now=now):
                _claim_lost(row)
                continue
            _sent(row, counts)
    return counts


def _send_batch(send_many: Callable[[Sequence[NotifyTarget]], list[BaseException | None]],
                rows: list[OutboxNotify], policy: NotifyConfig, owner: str,
                lease: timedelta, now: datetime | None, counts: dict[str, int]) -> None:
    """The batch path of :func:`drain_once`: same rules, row by row, for the results."""
    held = []
    for row in rows:
        if _held_for_a_send(row, owner, lease, now):
            held.append(row)
        else:
            log.info("NOTIFY row %d was taken over by another drainer; leaving it", row.id)
    if not held:
        return
    results = send_many([target_of(row) for row in held])
    sent = [row for row, error in zip(held, results, strict=True) if error is None]
    written = mark_sent_many(sent, owner, now=now)
    for row in sent:
        if row.id in written:
            _sent(row, counts)
        else:
            _claim_lost(row)
    database_error: BaseException | None = None
    down = [row for row, error in zip(held, results, strict=True)
            if isinstance(error, SwitchDown)]
    if down:
        error = results[held.index(down[0])]
        assert error is not None
        _switch_down(down[0], error, down[1:], policy, owner, now, counts)
    for row, error in zip(held, results, strict=True):
        if error is None or isinstance(error, SwitchDown):
            continue
        if isinstance(error, OperationalError | InterfaceError):
            database_error = error  # the rows stay claimed until their lease ends
            continue
        _refused(row, error, policy, owner, now, counts)
    if database_error is not None:
        raise database_error


def _sent(row: OutboxNotify, counts: dict[str, int]) -> None:
    counts["sent"] += 1
    log.info("NOTIFY %s sent to %s%s (device %s, config v%s)", row.event, row.endpoint,
             f" at {row.contact_uri}" if row.contact_uri else "", row.device_id,
             row.config_version)


def _switch_down(row: OutboxNotify, exc: BaseException, rest: Sequence[OutboxNotify],
                 policy: NotifyConfig, owner: str, now: datetime | None,
                 counts: dict[str, int]) -> None:
    """No switch: ``row`` waits without using up an attempt; ``rest`` would fail the
    same way and is released for later."""
    mark_failed(row, owner, str(exc), policy, count_attempt=False, now=now)
    counts["switch_down"] += 1
    for untried in rest:
        OutboxNotify.update(claimed_until=None).where(_still_claimed(untried, owner)).execute()


def _refused(row: OutboxNotify, exc: BaseException, policy: NotifyConfig, owner: str,
             now: datetime | None, counts: dict[str, int]) -> None:
    """The switch refused ``row`` (or sending it failed): retried later, or given up."""
    if not isinstance(exc, NotifyError):
        log.error("NOTIFY row %d: unexpected error while sending", row.id,
                  exc_info=(type(exc), exc, exc.__traceback__))
    status = mark_failed(row, owner, str(exc) or type(exc).__name__, policy, now=now)
    if status is None:
        _claim_lost(row)
        return
    counts["failed" if status == "failed" else "retry"] += 1
    log.warning("NOTIFY %s to %s not sent: %s (%s)", row.event, row.endpoint, exc, status)


def _held_for_a_send(row: OutboxNotify, owner: str, lease: timedelta,
                     now: datetime | None) -> bool:
    """True when ``row`` stays ours for at least two thirds of a lease: no other drainer
    can take a row before its lease ends, so with that much left (more than any send
    takes, see ``[notify] lease_seconds``) nothing needs checking; with less the claim
    is renewed, which also finds out whether another drainer took it meanwhile."""
    if row.claimed_until - (now or utcnow()) >= lease * 2 / 3:
        return True
    return renew_claim(row, owner, lease, now)


def _claim_lost(row: OutboxNotify) -> None:
    log.warning("NOTIFY row %d: the send outlasted [notify] lease_seconds and another "
                "drainer took the row; it may have been sent twice (raise lease_seconds "
                "above the switch's send timeout)", row.id)


def pending_count() -> int:
    return OutboxNotify.select().where(OutboxNotify.status == "pending").count()
