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
from dataclasses import dataclass
from datetime import datetime, timedelta

from peewee import fn

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
    if device.fetched_version >= device.config_version:
        return OK
    newest = newest_notify(device)
    if newest is not None and newest.status == "failed":
        return FAILED
    return PENDING


def provisioning_state_counts() -> dict[str, int]:
    """How many phones are in each state; one query for the common all-fetched case."""
    counts = {OK: 0, PENDING: 0, FAILED: 0}
    counts[OK] = Device.select().where(Device.fetched_version >= Device.config_version).count()
    for device in Device.select().where(Device.fetched_version < Device.config_version):
        counts[device_provisioning_state(device)] += 1
    return counts


def pending_devices() -> list[Device]:
    return list(Device.select().where(Device.fetched_version < Device.config_version)
                .order_by(Device.id))


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


def requeue_wait(config: Config, notifies_sent: int) -> timedelta:
    """Wait after the n-th NOTIFY of a version: fetch timeout, doubled per re-send."""
    base = config.provisioning.fetch_timeout_seconds
    seconds = base * (2 ** max(notifies_sent - 1, 0))
    return timedelta(seconds=min(seconds, max(config.worker.reconcile_backoff_max_seconds, base)))


def _decide(device: Device, config: Config, now: datetime) -> RequeueDecision:
    newest = newest_notify(device)
    if newest is None or newest.status == "pending":
        # Never notified (not provisioned through hotdesk yet) or a NOTIFY is in flight.
        return RequeueDecision(device.id, due=False)
    sent_for_version = (OutboxNotify.select()
                        .where((OutboxNotify.device == device)
                               & (OutboxNotify.config_version == device.config_version)
                               & (OutboxNotify.status != "superseded"))
                        .count())
    if sent_for_version >= 1 + config.worker.reconcile_max_requeues:
        return RequeueDecision(device.id, due=False, exhausted=True)
    last = max(newest.created_at, newest.sent_at or newest.created_at)
    return RequeueDecision(device.id, due=now - last >= requeue_wait(config, sent_for_version))


def _endpoint_now(device: Device, newest: OutboxNotify) -> str:
    """The SIP identity the phone is registered as: unchanged if it never fetched the
    change the newest NOTIFY announced, else the one its current session gives it."""
    if device.fetched_version < newest.config_version:
        return newest.endpoint
    session = Session.get_or_none((Session.device == device) & Session.ended_at.is_null())
    return session.user.sip_username if session else device.idle_sip_username


def locked_device(device_id: int) -> tuple[Device, Tenant] | None:
    """Inside a write transaction: the device, read after taking its row lock (the lock
    a login of that phone takes), and its tenant."""
    locked = for_update(Device.select(Device.id).where(Device.id == device_id)).first()
    if locked is None:
        return None
    device = Device.get_by_id(device_id)
    return device, Tenant.get_by_id(device.tenant_id)


def requeue(device_id: int, config: Config, now: datetime) -> bool:
    """Queue the NOTIFY again if, re-checked under the write lock, it is still due.

    The re-check makes several workers safe: the phone's row lock (BEGIN IMMEDIATE on
    SQLite), the same a login takes, serialises them, and the second one finds the
    first one's pending row.
    """
    with write_transaction(current_database()):
        locked = locked_device(device_id)
        if locked is None:
            return False
        device, tenant = locked
        if device.fetched_version >= device.config_version:
            return False
        decision = _decide(device, config, now)
        if not decision.due:
            return False
        newest = newest_notify(device)
        assert newest is not None
        row = outbox.enqueue(device, tenant, _endpoint_now(device, newest), newest.switch,
                             now=now)
        audit.record("notify_requeued", tenant=tenant, device=device,
                     config_version=device.config_version, fetched_version=device.fetched_version,
                     outbox=row.id)
    log.info("phone %s has not fetched config v%d: NOTIFY queued again to %s",
             device.mac, device.config_version, row.endpoint)
    return True


def _flag_pending(device: Device, notifies: int) -> bool:
    """Record once per config version that a phone gave up on; True when newly flagged.

    The mark is ``gave_up`` on the version's newest outbox row, set under the tenant lock.
    """
    def already() -> bool:
        return (OutboxNotify.select().where((OutboxNotify.device == device)
                                            & (OutboxNotify.config_version
                                               == device.config_version)
                                            & OutboxNotify.gave_up).exists())

    if already():
        return False
    with write_transaction(current_database()):
        for_update(Device.select(Device.id).where(Device.id == device.id)).get()
        newest = (OutboxNotify.select().where((OutboxNotify.device == device)
                                              & (OutboxNotify.config_version
                                                 == device.config_version))
                  .order_by(OutboxNotify.id.desc()).first())
        if newest is None or already():
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


def reconcile(config: Config, now: datetime | None = None) -> ReconcileResult:
    """One reconciliation pass over every phone that lacks its current config."""
    now = now or utcnow()
    result = ReconcileResult()
    for device in pending_devices():
        decision = _decide(device, config, now)
        if decision.exhausted:
            result.flagged += _flag_pending(device, 1 + config.worker.reconcile_max_requeues)
        elif decision.due:
            if requeue(device.id, config, now):
                result.requeued += 1
        else:
            result.waiting += 1
    return result
