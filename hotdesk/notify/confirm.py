"""Confirmed provisioning: the phone registered as the account its config names.

A fetched config is not a working phone: the config may carry a password the switch
refuses, or the phone may keep its old registration. While a registration watcher
runs (:func:`hotdesk.switch.registrations.watching`), the worker therefore checks
each phone that fetched its current config: registered as the expected account is
confirmed; not registered, or registered as another account, gets the NOTIFY again
(same bound and doubling wait as :mod:`hotdesk.notify.reconcile`, counted per config
version); refused by the switch is flagged once as "credentials rejected" (re-sending
the same config cannot help) for an admin.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from peewee import JOIN, SQL, chunked, fn

from hotdesk.notify import outbox, reconcile
from hotdesk.settings import Config
from hotdesk.store import audit
from hotdesk.store.db import current_database, for_update, write_transaction
from hotdesk.store.models import (
    AuditEvent,
    Device,
    Registration,
    RegistrationFailure,
    Session,
    Tenant,
    User,
    utcnow,
)
from hotdesk.switch import registrations as regs

log = logging.getLogger(__name__)


@dataclass
class ConfirmResult:
    confirmed: int = 0
    requeued: int = 0
    rejected: int = 0  # newly flagged
    gave_up: int = 0  # newly flagged
    waiting: int = 0


def fetched_devices(grace: timedelta, now: datetime) -> list[Device]:
    """Phones that fetched their current config at least ``grace`` ago."""
    return list(Device.select().where(_fetched(grace, now)).order_by(Device.id))


def _fetched(grace: timedelta, now: datetime):  # type: ignore[no-untyped-def]
    return ((Device.fetched_version >= Device.config_version)
            & Device.last_fetch_at.is_null(False) & (Device.last_fetch_at <= now - grace))


def unconfirmed_devices(grace: timedelta, now: datetime) -> list[Device]:
    """The fetched phones that may not be registered as expected; one query.

    Left out is only what :func:`hotdesk.switch.registrations.views` certainly calls
    registered: a phone with an unexpired registration of its own as the expected
    account (its logged-in user's, else its idle one) and no refused registration.
    Everything else (also a registration not yet matched to its phone) is judged by
    ``views`` exactly as for every phone.
    """
    expected = fn.COALESCE(User.sip_username, Device.idle_sip_username)
    matching = (Registration.select(SQL("1"))
                .where((Registration.device == Device.id) & (Registration.account == expected)
                       & (Registration.expires_at.is_null() | (Registration.expires_at >= now))))
    refused = RegistrationFailure.select(SQL("1")).where(RegistrationFailure.device == Device.id)
    return list(Device.select(Device)
                .join(Session, JOIN.LEFT_OUTER,
                      on=((Session.device == Device.id) & Session.ended_at.is_null()))
                .join(User, JOIN.LEFT_OUTER, on=(Session.user == User.id))
                .where(_fetched(grace, now) & (~fn.EXISTS(matching) | fn.EXISTS(refused)))
                .order_by(Device.id))


def check(config: Config, now: datetime | None = None) -> ConfirmResult:
    """One pass; does nothing while no watcher reports registrations.

    A bounded number of queries whatever the fleet's size: the phones registered as
    expected are counted in SQL, only the others are read and judged (their
    registrations, their NOTIFYs and the flags already written, each in one go).
    """
    now = now or utcnow()
    result = ConfirmResult()
    if not regs.watching(now):
        return result
    grace = timedelta(seconds=config.provisioning.fetch_timeout_seconds)
    devices = unconfirmed_devices(grace, now)
    result.confirmed = Device.select().where(_fetched(grace, now)).count() - len(devices)
    views = regs.views(devices, now)
    facts = reconcile.notify_facts([d for d in devices if not views[d.id].ok
                                    and views[d.id].state != regs.REJECTED])
    flagged = _flagged([d for d in devices if not views[d.id].ok])
    due: list[int] = []
    for device in devices:
        v = views[device.id]
        if v.ok:
            result.confirmed += 1
        elif v.state == regs.REJECTED:
            if ("credentials_rejected", device.id) not in flagged:
                result.rejected += _flag_once(device, "credentials_rejected", v,
                                              "the switch refused the phone's registration "
                                              f"as {v.expected}: {v.failure_reason}")
        else:
            decision = reconcile.decide(facts[device.id], config, now)
            if decision.exhausted:
                if ("registration_unconfirmed", device.id) not in flagged:
                    result.gave_up += _flag_once(device, "registration_unconfirmed", v,
                                                 f"still {v.label} after the last NOTIFY")
            elif decision.due:
                due.append(device.id)
            else:
                result.waiting += 1
    for group in chunked(due, reconcile.WRITE_GROUP):
        result.requeued += _requeue_many(group, config, now)
    return result


FLAGS = ("credentials_rejected", "registration_unconfirmed")


def _marker(device: Device) -> str:
    return f'"config_version": {device.config_version},'


def _flagged(devices: list[Device]) -> set[tuple[str, int]]:
    """(action, device id) of the flags already written for the phones' current versions."""
    found: set[tuple[str, int]] = set()
    by_id = {d.id: d for d in devices}
    for part in chunked(list(by_id), reconcile.BATCH):
        for action, device_id, detail in (AuditEvent.select(AuditEvent.action, AuditEvent.device,
                                                            AuditEvent.detail)
                                          .where(AuditEvent.action.in_(FLAGS)
                                                 & AuditEvent.device.in_(part)).tuples()):
            if _marker(by_id[device_id]) in (detail or ""):
                found.add((action, device_id))
    return found


def _requeue_many(device_ids: list[int], config: Config, now: datetime) -> int:
    """Queue the NOTIFY again, to the contact each phone is registered with right now,
    for the phones still unconfirmed and due when judged again under their row locks;
    one transaction, returns how many were queued."""
    queued = []
    with write_transaction(current_database()):
        devices, tenants = reconcile.locked_devices(device_ids)
        views = regs.views(devices, now)
        judged = [d for d in devices
                  if not views[d.id].ok and views[d.id].state != regs.REJECTED]
        facts = reconcile.notify_facts(judged)
        current: dict[int, Registration] = {}  # the newest registration of each phone
        for reg in (Registration.select().where(Registration.device.in_([d.id for d in judged]))
                    .order_by(Registration.refreshed_at.desc())):
            current.setdefault(reg.device_id, reg)
        for device in judged:
            newest, v, reg = facts[device.id].newest, views[device.id], current.get(device.id)
            if not reconcile.decide(facts[device.id], config, now).due:
                continue
            row = outbox.enqueue(device, tenants[device.tenant_id],
                                 reg.account if reg else v.expected,
                                 newest.switch if newest else config.switch.type, now=now)
            if reg is not None and reg.contact_uri:
                row.contact_uri = reg.contact_uri
                row.save()
            audit.record("notify_requeued", tenant=device.tenant_id, device=device,
                         config_version=device.config_version, reason=f"registration {v.label}",
                         outbox=row.id)
            queued.append((device, v, row))
    for device, v, row in queued:
        log.info("phone %s fetched config v%d but is %s (expects %s): NOTIFY queued again "
                 "to %s", device.mac, device.config_version, v.label, v.expected,
                 row.contact_uri or row.endpoint)
    return len(queued)


def _flag_once(device: Device, action: str, v: regs.RegistrationView, why: str) -> int:
    """Record ``action`` once per config version (audit + warning); 1 when newly recorded.

    The caller read that it is not recorded yet; checked again under the lock."""
    query = AuditEvent.select().where((AuditEvent.action == action)
                                      & (AuditEvent.device == device)
                                      & AuditEvent.detail.contains(_marker(device)))
    with write_transaction(current_database()):
        for_update(Tenant.select().where(Tenant.id == device.tenant_id)).get()
        if query.exists():
            return 0
        audit.record(action, tenant=device.tenant_id, device=device,
                     config_version=device.config_version, expected=v.expected,
                     registered_as=v.account, reason=v.failure_reason or v.label)
    log.warning("phone %s: %s", device.mac, why)
    return 1
