"""The durable NOTIFY outbox: rows are written with the state change, sent later by a sender.

A sender is the switch-specific part (AMI in hotdesk_agi, the inbound Event Socket in
esl_handlers). The outbox only knows when to try, whom to try, and what happened.
Claims are a conditional UPDATE (on PostgreSQL one UPDATE over a ``SELECT … FOR UPDATE
SKIP LOCKED``), so several hotdesk processes can drain one outbox without sending a
row twice.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

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


class NotifyError(Exception):
    """The switch refused or could not be reached; the row is retried later."""


class SwitchDown(NotifyError):
    """No connection to the switch: the row stays queued without using up an attempt."""


class NotifySender(Protocol):
    def send(self, target: NotifyTarget) -> None: ...


def contact_uri_for(endpoint: str, address: str) -> str:
    return f"sip:{endpoint}@{address}" if endpoint and address else ""


def enqueue(device: Device, tenant: Tenant, endpoint: str, switch: str,
            now: datetime | None = None, delay_seconds: float = 0.0) -> OutboxNotify:
    """Queue a check-sync for ``device``, addressed to the registration it has right now,
    due after ``delay_seconds``."""
    # Earlier pending rows for the phone stay: each targets the registration the phone
    # had then, and an extra check-sync costs the phone one fetch.
    values = _values(device, tenant, endpoint, switch, now or utcnow(), delay_seconds)
    db = current_database()
    row_id = inserted_id(db, _INSERT.run(db, **values))
    return OutboxNotify(__no_default__=True, id=row_id, status="pending", attempts=0, **values)


def _values(device: Device, tenant: Tenant, endpoint: str, switch: str, now: datetime,
            delay_seconds: float = 0.0) -> dict[str, object]:
    return dict(tenant=tenant.id, device=device.id, switch=switch, endpoint=endpoint,
                domain=tenant.sip_domain,
                contact_uri=contact_uri_for(endpoint, device.last_address),
                event=get_vendor(device.vendor).notify_event,
                config_version=device.config_version,
                next_attempt_at=now + timedelta(seconds=delay_seconds), created_at=now)


def enqueue_many(phones: list[tuple[Device, Tenant, str]], switch: str,
                 now: datetime) -> dict[int, int]:
    """Queue a paced push's check-sync for each (device, tenant, endpoint), each device at
    most once, due now and drained after ordinary rows; returns {device id: outbox id}.
    One statement on PostgreSQL (a tick's batch), a row at a time elsewhere."""
    values = [dict(_values(d, t, e, switch, now), paced=True) for d, t, e in phones]
    if isinstance(current_database(), PostgresqlDatabase) and phones:
        rows = (OutboxNotify.insert_many(values)
                .returning(OutboxNotify.id, OutboxNotify.device).execute())
        return {row.device_id: row.id for row in rows}
    return {v["device"]: OutboxNotify.insert(**v).execute() for v in values}


# Written by every login and logout, so compiled once (hotdesk.store.compiled).
_INSERT = Compiled(
    lambda **v: OutboxNotify.insert(**v),
    **{name: getattr(OutboxNotify, name) for name in (
        "tenant", "device", "switch", "endpoint", "domain", "contact_uri", "event",
        "config_version", "next_attempt_at", "created_at")})


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
    claimable = ((OutboxNotify.status == "pending") & (OutboxNotify.next_attempt_at <= now)
                 & (OutboxNotify.claimed_until.is_null() | (OutboxNotify.claimed_until < now)))
    due = (OutboxNotify.select(OutboxNotify.id).where(claimable)
           .order_by(_PUSHED_LAST, OutboxNotify.id).limit(limit))
    if isinstance(current_database(), PostgresqlDatabase):
        # One statement: drainers on other nodes skip the rows this one is locking
        # instead of queueing behind it and then finding them taken.
        query = (OutboxNotify.update(claimed_by=owner, claimed_until=now + lease)
                 .where(OutboxNotify.id.in_(due.for_update(skip_locked=True)))
                 .returning(OutboxNotify))
        return sorted(query.execute(), key=lambda row: (bool(row.paced), row.id))
    claimed: list[OutboxNotify] = []
    for row in list(due):
        taken = (OutboxNotify.update(claimed_by=owner, claimed_until=now + lease)
                 .where((OutboxNotify.id == row.id) & (OutboxNotify.status == "pending")
                        & (OutboxNotify.claimed_until.is_null()
                           | (OutboxNotify.claimed_until < now)))
                 .execute())
        if taken == 1:
            claimed.append(OutboxNotify.get_by_id(row.id))
    return claimed


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
                        contact_uri=row.contact_uri, event=row.event)


def mark_sent(row: OutboxNotify, owner: str, now: datetime | None = None) -> bool:
    """Record the send; False (nothing written) when the claim was lost meanwhile."""
    return (OutboxNotify.update(status="sent", sent_at=now or utcnow(),
                                attempts=OutboxNotify.attempts + 1,
                                claimed_until=None, last_error="")
            .where(_still_claimed(row, owner)).execute()) == 1


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
    being sent twice.
    """
    lease = timedelta(seconds=policy.lease_seconds)
    counts = {"sent": 0, "retry": 0, "failed": 0, "switch_down": 0}
    rows = claim_due(limit, owner, lease, now=now)
    for index, row in enumerate(rows):
        if not _held_for_a_send(row, owner, lease, now):
            log.info("NOTIFY row %d was taken over by another drainer; leaving it", row.id)
            continue
        target = target_of(row)
        try:
            sender.send(target)
        except SwitchDown as exc:
            mark_failed(row, owner, str(exc), policy, count_attempt=False, now=now)
            counts["switch_down"] += 1
            # Everything else would fail the same way: release the rest for later.
            for untried in rows[index + 1:]:
                (OutboxNotify.update(claimed_until=None)
                 .where(_still_claimed(untried, owner)).execute())
            break
        except (OperationalError, InterfaceError):
            raise  # the database, not the row: the drain loop waits and retries
        except Exception as exc:  # noqa: BLE001 - a bad row must not stop the rows after it
            if not isinstance(exc, NotifyError):
                log.exception("NOTIFY row %d: unexpected error while sending", row.id)
            status = mark_failed(row, owner, str(exc) or type(exc).__name__, policy, now=now)
            if status is None:
                _claim_lost(row)
                continue
            counts["failed" if status == "failed" else "retry"] += 1
            log.warning("NOTIFY %s to %s not sent: %s (%s)", row.event, target.endpoint, exc,
                        status)
        else:
            if not mark_sent(row, owner, now=now):
                _claim_lost(row)
                continue
            counts["sent"] += 1
            log.info("NOTIFY %s sent to %s%s (device %s, config v%s)", row.event,
                     target.endpoint, f" at {target.contact_uri}" if target.contact_uri else "",
                     row.device_id, row.config_version)
    return counts


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
