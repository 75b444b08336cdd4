"""Reconciliation: make sure every phone ends up with the config it should have.

A NOTIFY can be lost (phone rebooting, UDP dropped, phone busy) even when the switch
accepted it. The phone reports nothing; the only evidence is that it never fetched
the new config version. So the worker compares each device's desired
``config_version`` with its ``fetched_version`` and sends the NOTIFY again, with a
doubling wait and a bounded number of tries per version, after which the phone is
left "pending" for an admin (the audit trail says so once).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from peewee import Case, chunked, fn

from hotdesk.notify import outbox
from hotdesk.settings import Config
from hotdesk.store import audit
from hotdesk.store.db import current_database, for_update, write_transaction
from hotdesk.store.models import (
    Device,
    OutboxNotify,
    Session,
    Tenant,
    utcnow,
)

log = logging.getLogger(__name__)

OK, PENDING, FAILED = "ok", "pending", "failed"


def newest_notify(device: Device | int) -> OutboxNotify | None:
    return (OutboxNotify.select().where(OutboxNotify.device == device)
            .order_by(OutboxNotify.id.desc()).first())


def device_provisioning_state(device: Device) -> str:
    """``ok`` (the phone fetched its current config), ``failed`` (the switch refused the
    newest NOTIFY every time) or ``pending`` (the phone has not fetched it yet)."""
    return provisioning_states([device])[device.id]


def provisioning_states(devices: Sequence[Device]) -> dict[int, str]:
    """Each phone's :func:`device_provisioning_state`, in two queries per batch."""
    facts = notify_facts([d for d in devices if d.fetched_version < d.config_version])
    states = {}
    for device in devices:
        newest = facts[device.id].newest if device.id in facts else None
        states[device.id] = (OK if device.id not in facts else
                             FAILED if newest is not None and newest.status == "failed"
                             else PENDING)
    return states


def provisioning_state_counts() -> dict[str, int]:
    """How many phones are in each state, in three queries whatever the fleet's size."""
    unfetched = Device.fetched_version < Device.config_version
    newest = (OutboxNotify.select(fn.MAX(OutboxNotify.id))
              .join(Device, on=(OutboxNotify.device == Device.id))
              .where(unfetched).group_by(OutboxNotify.device))
    failed = (OutboxNotify.select().where(OutboxNotify.id.in_(newest)
                                          & (OutboxNotify.status == "failed")).count())
    pending = Device.select().where(unfetched).count()
    ok = Device.select().where(Device.fetched_version >= Device.config_version).count()
    return {OK: ok, PENDING: pending - failed, FAILED: failed}


def pending_devices(limit: int | None = None) -> list[Device]:
    return list(Device.select().where(Device.fetched_version < Device.config_version)
                .order_by(Device.id).limit(limit))


def outbox_counts() -> dict[str, int]:
    query = (OutboxNotify.select(OutboxNotify.status, fn.COUNT(OutboxNotify.id).alias("n"))
             .group_by(OutboxNotify.status))
    return {row.status: row.n for row in query}


def oldest_pending_age(now: datetime | None = None) -> float:
    """Seconds the oldest pending NOTIFY has waited; 0 when none waits."""
    now = now or utcnow()
    oldest = (OutboxNotify.select(fn.MIN(OutboxNotify.created_at))
              .where(OutboxNotify.status == "pending").scalar())
    if oldest is None:
        return 0.0
    return max((now - oldest).total_seconds(), 0.0)


def release_expired_claims(now: datetime | None = None) -> int:
    """Clear claims of crashed drainers past their lease, so the rows show as plain pending.

    ``outbox.claim_due`` already ignores an expired lease; this only tidies the rows
    (and logs it) so ``hotdesk status`` does not show them as in flight.
    """
    now = now or utcnow()
    released = (OutboxNotify.update(claimed_until=None)
                .where((OutboxNotify.status == "pending")
                       & OutboxNotify.claimed_until.is_null(False)
                       & (OutboxNotify.claimed_until < now))
                .execute())
    if released:
        log.info("released %d NOTIFY claim(s) whose lease expired (drainer died?)", released)
    return released


@dataclass(frozen=True)
class RequeueDecision:
    device_id: int
    due: bool
    exhausted: bool = False


@dataclass(frozen=True)
class NotifyFacts:
    """What the re-send decision reads about one phone, for many phones in one go."""

    device: Device
    newest: OutboxNotify | None  # the phone's newest NOTIFY, of any config version
    sent_for_version: int  # NOTIFYs queued for its current version (superseded ones aside)
    gave_up: bool  # reconciliation already gave up on its current version


# Phones read (and decided on) per batch: bounds the rows and bound parameters per query.
BATCH = 500


def notify_facts(devices: Sequence[Device]) -> dict[int, NotifyFacts]:
    """Each phone's :class:`NotifyFacts`: two queries per :data:`BATCH` phones.

    One grouped query finds each phone's newest row and counts its current version's
    rows (``Device.config_version`` as the database holds it), one reads the newest rows.
    """
    facts: dict[int, NotifyFacts] = {}
    this_version = OutboxNotify.config_version == Device.config_version
    counted = Case(None, [(this_version & (OutboxNotify.status != "superseded"), 1)], 0)
    flagged = Case(None, [(this_version & (OutboxNotify.gave_up == True), 1)], 0)  # noqa: E712
    for part in chunked(devices, BATCH):
        ids = [d.id for d in part]
        grouped = list(OutboxNotify.select(OutboxNotify.device, fn.MAX(OutboxNotify.id),
                                           fn.SUM(counted), fn.MAX(flagged))
                       .join(Device, on=(OutboxNotify.device == Device.id))
                       .where(OutboxNotify.device.in_(ids))
                       .group_by(OutboxNotify.device).tuples())
        newest = {row.device_id: row for row in
                  OutboxNotify.select().where(OutboxNotify.id.in_([g[1] for g in grouped]))}
        counts = {g[0]: (int(g[2] or 0), bool(g[3])) for g in grouped}
        for device in part:
            sent, gave_up = counts.get(device.id, (0, False))
            facts[device.id] = NotifyFacts(device, newest.get(device.id), sent, gave_up)
    return facts


def requeue_wait(config: Config, notifies_sent: int) -> timedelta:
    """Wait after the n-th NOTIFY of a version: fetch timeout, doubled per re-send."""
    base = config.provisioning.fetch_timeout_seconds
    seconds = base * (2 ** max(notifies_sent - 1, 0))
    return timedelta(seconds=min(seconds, max(config.worker.reconcile_backoff_max_seconds, base)))


def decide(facts: NotifyFacts, config: Config, now: datetime) -> RequeueDecision:
    """Whether the phone's NOTIFY is due again, or its re-sends are used up."""
    device, newest = facts.device, facts.newest
    if newest is None or newest.status == "pending":
        # Never notified (not provisioned through hotdesk yet) or a NOTIFY is in flight.
        return RequeueDecision(device.id, due=False)
    if facts.sent_for_version >= 1 + config.worker.reconcile_max_requeues:
        return RequeueDecision(device.id, due=False, exhausted=True)
    last = max(newest.created_at, newest.sent_at or newest.created_at)
    return RequeueDecision(device.id, due=now - last >= requeue_wait(config,
                                                                     facts.sent_for_version))


def _endpoint_now(device: Device, newest: OutboxNotify) -> str:
    """The SIP identity the phone is registered as: unchanged if it never fetched the
    change the newest NOTIFY announced, else the one its current session gives it."""
    if device.fetched_version < newest.config_version:
        return newest.endpoint
    session = Session.get_or_none((Session.device == device) & Session.ended_at.is_null())
    return session.user.sip_username if session else device.idle_sip_username


def locked_devices(device_ids: Sequence[int]) -> tuple[list[Device], dict[int, Tenant]]:
    """Inside a write transaction: the phones, read after taking their row locks in
    ascending id order (the order a login locks phones in, so the two never wait for
    each other in a cycle), and their tenants."""
    ids = [d.id for d in for_update(Device.select(Device.id)
                                    .where(Device.id.in_(sorted(set(device_ids))))
                                    .order_by(Device.id))]
    devices = list(Device.select().where(Device.id.in_(ids)).order_by(Device.id))
    tenants = {t.id: t for t in Tenant.select().where(
        Tenant.id.in_(sorted({d.tenant_id for d in devices})))}
    return devices, tenants


# Phones re-queued per write transaction: one commit for many, each lock held briefly.
WRITE_GROUP = 50


def requeue(device_id: int, config: Config, now: datetime) -> bool:
    """Queue the phone's NOTIFY again if, re-checked under the write lock, it is still due."""
    return requeue_many([device_id], config, now) == 1


def requeue_many(device_ids: Sequence[int], config: Config, now: datetime) -> int:
    """Queue the NOTIFY again for each phone still due when re-checked under its row
    lock, in one transaction; returns how many were queued.

    The re-check makes several workers safe: the phones' row locks (BEGIN IMMEDIATE on
    SQLite), the ones a login takes, serialise them, and the second one finds the
    first one's pending rows (phones locked by :func:`locked_devices`).
    """
    queued: list[tuple[Device, OutboxNotify]] = []
    with write_transaction(current_database()):
        devices, tenants = locked_devices(device_ids)
        unfetched = [d for d in devices if d.fetched_version < d.config_version]
        for facts in notify_facts(unfetched).values():
            if not decide(facts, config, now).due:
                continue
            assert facts.newest is not None
            device, tenant = facts.device, tenants[facts.device.tenant_id]
            row = outbox.enqueue(device, tenant, _endpoint_now(device, facts.newest),
                                 facts.newest.switch, now=now)
            audit.record("notify_requeued", tenant=tenant, device=device,
                         config_version=device.config_version,
                         fetched_version=device.fetched_version, outbox=row.id)
            queued.append((device, row))
    for device, row in queued:
        log.info("phone %s has not fetched config v%d: NOTIFY queued again to %s",
                 device.mac, device.config_version, row.endpoint)
    return len(queued)


def _flag_pending(device: Device, notifies: int) -> bool:
    """Record once per config version that a phone gave up on; True when newly flagged.

    The mark is ``gave_up`` on the version's newest outbox row, set under the phone's
    lock; the caller read that no row carries it yet, and it is checked again here.
    """
    with write_transaction(current_database()):
        for_update(Device.select(Device.id).where(Device.id == device.id)).get()
        of_version = ((OutboxNotify.device == device)
                      & (OutboxNotify.config_version == device.config_version))
        newest = OutboxNotify.select().where(of_version).order_by(OutboxNotify.id.desc()).first()
        if newest is None or OutboxNotify.select().where(of_version
                                                         & OutboxNotify.gave_up).exists():
            return False
        OutboxNotify.update(gave_up=True).where(OutboxNotify.id == newest.id).execute()
        audit.record("provisioning_pending", tenant=device.tenant_id, device=device,
                     config_version=device.config_version,
                     fetched_version=device.fetched_version, outbox=newest.id)
    log.warning("phone %s still has not fetched config v%d after %d NOTIFYs; "
                "left pending for an admin", device.mac, device.config_version, notifies)
    return True


@dataclass
class ReconcileResult:
    requeued: int = 0
    flagged: int = 0
    waiting: int = 0


def pending_batches(batch: int | None = None) -> Iterator[list[Device]]:
    """Phones lacking their current config, ``batch`` at a time in id order (keyset:
    each batch is one query however many phones there are, none is read twice)."""
    batch = batch or BATCH
    after = 0
    while True:
        part = list(Device.select().where((Device.fetched_version < Device.config_version)
                                          & (Device.id > after))
                    .order_by(Device.id).limit(batch))
        if not part:
            return
        yield part
        if len(part) < batch:
            return
        after = part[-1].id


def reconcile(config: Config, now: datetime | None = None) -> ReconcileResult:
    """One reconciliation pass over every phone that lacks its current config.

    Reads in batches without locks (three queries per :data:`BATCH` pending phones;
    phones that fetched their config are never read); only phones whose re-send or
    give-up is decided are locked, re-checked and written, the re-sends
    :data:`WRITE_GROUP` to a transaction.
    """
    now = now or utcnow()
    result = ReconcileResult()
    for part in pending_batches():
        due: list[int] = []
        for facts in notify_facts(part).values():
            decision = decide(facts, config, now)
            if decision.exhausted:
                if not facts.gave_up:
                    result.flagged += _flag_pending(facts.device,
                                                    1 + config.worker.reconcile_max_requeues)
            elif decision.due:
                due.append(facts.device.id)
            else:
                result.waiting += 1
        for group in chunked(due, WRITE_GROUP):
            result.requeued += requeue_many(group, config, now)
    return result
