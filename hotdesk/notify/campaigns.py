"""Paced check-sync pushes ("campaigns"): start one, follow its progress, cancel it.

Starting a campaign writes its phones into ``push_target`` in one transaction and queues
nothing yet: the pacer (:mod:`hotdesk.notify.pacing`) releases them into the outbox at
``[notify] push_rate``. The web page, the REST API and the CLI all call these functions
with the admin's tenant scope (``None`` = every tenant); which phones a push covers is
:mod:`hotdesk.notify.push_selection`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

from peewee import JOIN, Case, fn

from hotdesk.admin.errors import Conflict, InventoryError, NotFound
from hotdesk.notify.push_models import PushCampaign, PushTarget, lock_pacer
from hotdesk.notify.push_selection import Scope, chunks
from hotdesk.settings import Config
from hotdesk.store import audit
from hotdesk.store.db import current_database, write_transaction
from hotdesk.store.models import Device, OutboxNotify, utcnow


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
        for chunk in chunks(ids, 500):
            tenants.update(d.tenant_id for d in Device.select(Device.tenant)
                           .where(Device.id.in_(chunk)).distinct())
        tenant = next(iter(tenants)) if len(tenants) == 1 else None
        campaign = PushCampaign.create(tenant=tenant, scope=kind, actor=actor, rate=rate,
                                       total=len(ids), paced_until=now, created_at=now)
        for chunk in chunks(ids, 500):
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
