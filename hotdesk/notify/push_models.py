"""Tables of paced check-sync pushes: a campaign, its phones, and the one pacing clock.

A campaign's phones wait in ``push_target`` until the pacer (hotdesk.notify.pacing)
releases them into the ordinary outbox, a few per tick, so 10,000 phones never fetch
their configs in the same second. Everything is in the database, so a restart carries
on where it stopped and several processes on several nodes share one rate.
"""

from __future__ import annotations

from datetime import datetime

from peewee import AutoField, CharField, DateTimeField, FloatField, ForeignKeyField, IntegerField

from hotdesk.store.models import BaseModel, Device, Tenant, utcnow


class PushCampaign(BaseModel):
    id = AutoField()
    # The one tenant it covers; NULL when it spans several (system administrators only).
    tenant = ForeignKeyField(Tenant, null=True, on_delete="CASCADE")
    scope = CharField()  # all | tenant | selected
    actor = CharField(default="system")
    state = CharField(default="running", index=True)  # running | cancelled | done
    rate = FloatField()  # phones per second for this campaign (at most [notify] push_rate)
    total = IntegerField(default=0)
    # Releases are accounted up to this time (see hotdesk.notify.pacing.release).
    paced_until = DateTimeField(default=utcnow)
    created_at = DateTimeField(default=utcnow)
    finished_at = DateTimeField(null=True)


class PushTarget(BaseModel):
    id = AutoField()
    campaign = ForeignKeyField(PushCampaign, on_delete="CASCADE")
    device = ForeignKeyField(Device, null=True, on_delete="SET NULL")
    state = CharField(default="waiting")  # waiting | released | skipped | cancelled
    # The outbox_notify row its release wrote (a plain id: outbox rows may be purged).
    outbox_id = IntegerField(null=True, index=True)
    released_at = DateTimeField(null=True)

    class Meta:
        indexes = ((("campaign", "state", "id"), False),)


class PushPacer(BaseModel):
    """One row: the shared pacing clock. Every release step locks it first, which is what
    makes the rate exact across processes and nodes."""

    id = AutoField()
    paced_until = DateTimeField(default=utcnow)
    ticks = IntegerField(default=0)


PUSH_MODELS: list[type[BaseModel]] = [PushCampaign, PushTarget, PushPacer]


def lock_pacer(fresh_until: datetime) -> PushPacer:
    """Inside a write transaction: lock the one pacer row, first of all, so release steps
    and cancels on every node take turns (the row is created, with ``paced_until`` =
    ``fresh_until``, the first time)."""
    for _ in range(2):
        if PushPacer.update(ticks=PushPacer.ticks + 1).where(PushPacer.id == 1).execute():
            return PushPacer.get_by_id(1)
        PushPacer.insert(id=1, paced_until=fresh_until, ticks=0).on_conflict_ignore().execute()
    raise RuntimeError("push_pacer row could not be created")
