"""Paced check-sync pushes ("campaigns"): start one, follow its progress, cancel it.

Starting a campaign writes its phones into ``push_target`` in one transaction and queues
nothing yet: the pacer (:mod:`hotdesk.notify.pacing`) releases them into the outbox at
``[notify] push_rate``. The web page, the REST API and the CLI all call these functions
with the admin's tenant scope (``None`` = every tenant).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

from peewee import JOIN, Case, fn

from hotdesk.admin.errors import Conflict, InventoryError, NotFound
from hotdesk.mac import InvalidMac, normalise_mac
from hotdesk.notify.push_models import PushCampaign, PushTarget, lock_pacer
from hotdesk.settings import Config
from hotdesk.store import audit
from hotdesk.store.db import current_database, write_transaction
from hotdesk.store.models import Device, OutboxNotify, Tenant, utcnow

Scope = Sequence[int] | None  # tenant ids an admin may see; None = all tenants
SCOPES = ("all", "tenant", "selected")
MAX_PASTED = 10000  # MACs / extensions in one pasted list


@dataclass(frozen=True)
class Progress:
    """A campaign as an admin reads it; every count is of phones."""

    id: int
    tenant_id: int | None
    scope: str
    actor: str
    state: str
    rate: float
    total: int
    waiting: int  # not released yet
    queued: int  # released, NOTIFY not sent yet
    sent: int
    confirmed: int  # fetched their config after the NOTIFY was sent
    failed: int  # the outbox gave up on the NOTIFY
    cancelled: int  # never released: the campaign was cancelled
    skipped: int  # the phone was deleted before its turn
    created_at: datetime
    finished_at: datetime | None

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.cancelled + self.skipped

    @property
    def percent(self) -> int:
        return 100 if not self.total else min(100, self.done * 100 // self.total)

    @property
    def seconds_left(self) -> int:
        return int((self.waiting + self.queued) / self.rate) if self.state == "running" else 0

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out.update(done=self.done, percent=self.percent, seconds_left=self.seconds_left,
                   created_at=_iso(self.created_at), finished_at=_iso(self.finished_at))
        return out


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


# -- choosing phones ----------------------------------------------------------------------


def scoped_devices(scope: Scope):  # type: ignore[no-untyped-def]
    query = Device.select()
    return query if scope is None else query.where(Device.tenant.in_(list(scope)))


def resolve_phones(text: str, scope: Scope, tenant_id: int | None = None) -> list[int]:
    """Device ids for pasted MACs or idle extensions (any separators), within ``scope``
    (and ``tenant_id`` when given). Anything not found is refused, naming the first
    few, so an admin never starts a campaign that silently misses phones."""
    tokens = [t for t in re.split(r"[\s,;]+", text or "") if t]
    if not tokens:
        raise InventoryError("paste at least one MAC address or extension")
    if len(tokens) > MAX_PASTED:
        raise InventoryError(f"at most {MAX_PASTED} MAC addresses or extensions at once")
    macs: dict[str, str] = {}
    extensions: list[str] = []
    for token in tokens:
        try:
            macs[normalise_mac(token)] = token
        except InvalidMac:
            if not re.fullmatch(r"[0-9A-Za-z_.+*#-]{1,40}", token):
                raise InventoryError(f"{token[:40]!r} is neither a MAC address nor an "
                                     "extension") from None
            extensions.append(token)
    base = scoped_devices(scope)
    if tenant_id is not None:
        base = base.where(Device.tenant == tenant_id)
    found: dict[int, None] = {}
    missing: list[str] = []
    for chunk in _chunks(list(macs), 500):
        rows = {d.mac: d.id for d in base.select(Device.id, Device.mac)
                .where(Device.mac.in_(chunk))}
        missing += [macs[m] for m in chunk if m not in rows]
        found.update(dict.fromkeys(rows[m] for m in chunk if m in rows))
    for chunk in _chunks(extensions, 500):
        rows_by_ext: dict[str, list[int]] = {}
        for d in base.select(Device.id, Device.idle_extension).where(
                Device.idle_extension.in_(chunk)):
            rows_by_ext.setdefault(d.idle_extension, []).append(d.id)
        for ext in chunk:
            if ext not in rows_by_ext:
                missing.append(ext)
            elif len(rows_by_ext[ext]) > 1:
                raise InventoryError(f"extension {ext} is a phone in several tenants; "
                                     "choose the tenant or paste its MAC")
            else:
                found[rows_by_ext[ext][0]] = None
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise NotFound(f"no phone {', '.join(missing[:5])}{more}")
    return list(found)


def _chunks(items: list, size: int) -> list[list]:  # type: ignore[type-arg]
    return [items[i:i + size] for i in range(0, len(items), size)]


def phones_for(scope: Scope, kind: str, tenant_id: int | None = None,
               device_ids: Sequence[int] = ()) -> list[int]:
    """The device ids a campaign of ``kind`` covers, in the admin's scope.

    A tenant or a phone outside the scope is "not found", exactly like one that does
    not exist, so nothing about other tenants leaks."""
    if kind not in SCOPES:
        raise InventoryError(f"scope must be one of {', '.join(SCOPES)}")
    query = scoped_devices(scope).select(Device.id)
    if kind == "tenant":
        if tenant_id is None or (scope is not None and tenant_id not in scope) \
                or not Tenant.select().where(Tenant.id == tenant_id).exists():
            raise NotFound("no such tenant")
        query = query.where(Device.tenant == tenant_id)
    elif kind == "selected":
        wanted = list(dict.fromkeys(device_ids))
        if not wanted:
            raise InventoryError("choose at least one phone")
        known: set[int] = set()
        for chunk in _chunks(wanted, 500):
            known.update(d.id for d in query.where(Device.id.in_(chunk)))
        missing = [i for i in wanted if i not in known]
        if missing:
            raise NotFound(f"no phone with id {missing[0]}")
        return wanted
    return [d.id for d in query.order_by(Device.tenant, Device.id)]


# -- the campaign ---------------------------------------------------------------------------


def start(config: Config, kind: str, device_ids: Sequence[int], actor: str,
          rate: float | None = None, now: datetime | None = None) -> PushCampaign:
    """Record a campaign over ``device_ids`` (already checked against the admin's scope,
    see :func:`phones_for`); the pacer releases them from the next tick on."""
    ceiling = config.notify.push_rate
    if rate is None:
        rate = ceiling
    if not 0 < rate <= ceiling:
        raise InventoryError(f"rate must be more than 0 and at most {ceiling:g} phones per "
                             "second ([notify] push_rate)")
    ids = list(dict.fromkeys(device_ids))
    if not ids:
        raise InventoryError("no phones to push to")
    now = now or utcnow()
    db = current_database()
    with write_transaction(db):
        tenants: set[int] = set()
        for chunk in _chunks(ids, 500):
            tenants.update(d.tenant_id for d in Device.select(Device.tenant)
                           .where(Device.id.in_(chunk)).distinct())
        tenant = next(iter(tenants)) if len(tenants) == 1 else None
        campaign = PushCampaign.create(tenant=tenant, scope=kind, actor=actor, rate=rate,
                                       total=len(ids), paced_until=now, created_at=now)
        for chunk in _chunks(ids, 500):
            PushTarget.insert_many([{"campaign": campaign.id, "device": i} for i in chunk]
                                   ).execute()
        audit.record("push_started", tenant=tenant, actor=actor, campaign=campaign.id,
                     scope=kind, phones=len(ids), rate=rate)
    return campaign


def visible(campaign_id: int, scope: Scope) -> PushCampaign:
    """The campaign if the admin may see it; a campaign over several tenants only for
    system administrators. Anything else is "not found"."""
    query = PushCampaign.select().where(PushCampaign.id == campaign_id)
    if scope is not None:
        query = query.where(PushCampaign.tenant.in_(list(scope)))
    campaign = query.first()
    if campaign is None:
        raise NotFound(f"no push campaign {campaign_id}")
    return campaign


def recent(scope: Scope, limit: int = 10) -> list[Progress]:
    """Running campaigns first, then the newest finished ones."""
    query = PushCampaign.select()
    if scope is not None:
        query = query.where(PushCampaign.tenant.in_(list(scope)))
    running = list(query.where(PushCampaign.state == "running").order_by(PushCampaign.id))
    finished = list(query.where(PushCampaign.state != "running")
                    .order_by(PushCampaign.id.desc()).limit(limit)) if limit > 0 else []
    return [progress(c) for c in running + finished]


def progress(campaign: PushCampaign) -> Progress:
    """Counts from the targets and the outbox rows they were released as."""
    states = dict(PushTarget.select(PushTarget.state, fn.COUNT(PushTarget.id))
                  .where(PushTarget.campaign == campaign.id)
                  .group_by(PushTarget.state).tuples())
    fetched_after = Case(None, [((Device.last_fetch_at >= OutboxNotify.sent_at), 1)], 0)
    sent = {status: (n, int(confirmed or 0)) for status, n, confirmed in (
        PushTarget.select(OutboxNotify.status, fn.COUNT(PushTarget.id), fn.SUM(fetched_after))
        .join(OutboxNotify, on=(PushTarget.outbox_id == OutboxNotify.id))
        .join(Device, JOIN.LEFT_OUTER, on=(OutboxNotify.device == Device.id))
        .where((PushTarget.campaign == campaign.id) & (PushTarget.state == "released"))
        .group_by(OutboxNotify.status).tuples())}
    # "superseded": a newer NOTIFY for the phone went instead; it carries the same config.
    delivered = [sent.get(s, (0, 0)) for s in ("sent", "superseded")]
    return Progress(
        id=campaign.id, tenant_id=campaign.tenant_id, scope=campaign.scope,
        actor=campaign.actor, state=campaign.state, rate=campaign.rate, total=campaign.total,
        waiting=states.get("waiting", 0), queued=sent.get("pending", (0, 0))[0],
        sent=sum(n for n, _ in delivered), confirmed=sum(c for _, c in delivered),
        failed=sent.get("failed", (0, 0))[0], cancelled=states.get("cancelled", 0),
        skipped=states.get("skipped", 0), created_at=campaign.created_at,
        finished_at=campaign.finished_at)


def cancel(campaign_id: int, scope: Scope, actor: str, now: datetime | None = None) -> Progress:
    """Stop releasing: the phones not released yet are never pushed; those already
    released keep their NOTIFY. Takes the pacer's lock, so no release step is halfway."""
    now = now or utcnow()
    with write_transaction(current_database()):
        lock_pacer(fresh_until=now)
        campaign = visible(campaign_id, scope)
        if campaign.state != "running":
            already = "was already cancelled" if campaign.state == "cancelled" else "has finished"
            raise Conflict(f"push campaign {campaign_id} {already}")
        left = (PushTarget.update(state="cancelled")
                .where((PushTarget.campaign == campaign.id) & (PushTarget.state == "waiting"))
                .execute())
        PushCampaign.update(state="cancelled", finished_at=now).where(
            PushCampaign.id == campaign.id).execute()
        audit.record("push_cancelled", tenant=campaign.tenant_id, actor=actor,
                     campaign=campaign.id, not_pushed=left)
    return progress(PushCampaign.get_by_id(campaign.id))
