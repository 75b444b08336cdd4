"""The release step of paced pushes: a few campaign phones per tick go into the outbox.

Each step runs in one transaction that first locks the single ``push_pacer`` row
(PostgreSQL: a row lock; SQLite: BEGIN IMMEDIATE), so however many workers on however
many nodes run it, their releases are serialised and counted against one clock:

* the pacer's ``paced_until`` advances by 1/``[notify] push_rate`` per phone released
  over all campaigns, a campaign's own ``paced_until`` by 1/its rate. A step may
  release what the time since then allows, at most :data:`BURST_SECONDS` worth, so a
  pause (no worker, a locked database) never turns into a burst;
* a campaign releases nothing while :data:`INFLIGHT_SECONDS` worth of its phones are
  still queued in the outbox: a switch that is down, or a drain slower than the rate,
  slows the push to what is actually sent, so a login's NOTIFY (queued behind them in
  the outbox) never waits for more than that much, and a reconnect sends that many, not
  the whole fleet;
* each phone's outbox row and its target's ``released`` mark commit together, so a
  crash either released a phone (its NOTIFY is in the durable outbox) or did not (the
  next step releases it): none twice, none skipped.

Ordinary NOTIFYs (logins, logouts, admin changes) never pass through here: they are
queued straight into the outbox as before; the pacer only decides when campaign phones
join that queue.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from peewee import Case, InterfaceError, OperationalError

from hotdesk.notify import outbox
from hotdesk.notify.campaigns import progress
from hotdesk.notify.push_models import PushCampaign, PushPacer, PushTarget, lock_pacer
from hotdesk.ops.supervise import LoopMonitor, SupervisedThread
from hotdesk.settings import Config
from hotdesk.store import audit
from hotdesk.store.db import close_quietly, current_database, write_transaction
from hotdesk.store.models import (
    Device,
    OutboxNotify,
    Session,
    Tenant,
    User,
    process_database,
    utcnow,
)

log = logging.getLogger(__name__)

BURST_SECONDS = 1.0  # the most one step releases after a pause, in seconds of rate
# A campaign waits while this many seconds of its phones are queued, unsent: more than the
# drain's poll interval ([notify] poll_seconds, 1 s), so a drain that keeps up never waits.
INFLIGHT_SECONDS = 2.0
TICK_SECONDS = 0.25  # how often the worker runs the step


@dataclass
class ReleaseResult:
    released: int = 0
    running: int = 0
    held: int = 0  # campaigns waiting for their queued phones to be sent
    finished: list[int] = field(default_factory=list)


def release(config: Config, now: datetime | None = None) -> ReleaseResult:
    """One release step over every running campaign; database errors propagate."""
    now = now or utcnow()
    result = ReleaseResult()
    if not PushCampaign.select().where(PushCampaign.state == "running").exists():
        return result  # the common case costs one read, no lock
    horizon = now - timedelta(seconds=BURST_SECONDS)
    with write_transaction(current_database()):
        # A new pacer owes nothing: it may release one burst's worth at once.
        pacer = lock_pacer(fresh_until=horizon)
        running = list(PushCampaign.select().where(PushCampaign.state == "running")
                       .order_by(PushCampaign.id))
        result.running = len(running)
        g_start = _start(pacer.paced_until, horizon, now)
        budget = _allowance(g_start, now, config.notify.push_rate)
        wants: dict[int, int] = {}
        starts: dict[int, datetime] = {}
        for c in running:
            starts[c.id] = _start(c.paced_until, horizon, now)
            room = max(math.ceil(c.rate * INFLIGHT_SECONDS), 1) - _queued(c.id)
            if room <= 0:
                result.held += 1
            wants[c.id] = max(0, min(_allowance(starts[c.id], now, c.rate), room))
        shares = fair_shares(wants, budget)
        for c in running:
            n = _release_targets(c, shares[c.id], config.switch.type, now) if shares[c.id] else 0
            result.released += n
            paced = starts[c.id] + timedelta(seconds=n / c.rate)
            PushCampaign.update(paced_until=paced).where(PushCampaign.id == c.id).execute()
            # Only a push that ran out of phones to release can have finished.
            if n < shares[c.id] and _finished(c.id):
                _finish(c, now)
                result.finished.append(c.id)
        PushPacer.update(paced_until=g_start + timedelta(
            seconds=result.released / config.notify.push_rate)).where(PushPacer.id == 1).execute()
    return result


def _start(paced_until: datetime, horizon: datetime, now: datetime) -> datetime:
    """Where this step's accounting starts: no earlier than one burst ago, and no later
    than now (a clock set back must not stall pushes until it catches up)."""
    return min(max(paced_until, horizon), now)


def _allowance(since: datetime, now: datetime, rate: float) -> int:
    # The epsilon keeps 0.05 s x 20/s from flooring to 0 through float rounding.
    return max(0, math.floor((now - since).total_seconds() * rate + 1e-6))


def fair_shares(wants: dict[int, int], budget: int) -> dict[int, int]:
    """Split ``budget`` between campaigns: each gets what it wants when everything fits,
    else equal shares, the oldest first for the remainder (water-filling)."""
    shares = dict.fromkeys(wants, 0)
    left = budget
    open_ids = [i for i, w in wants.items() if w > 0]
    while left > 0 and open_ids:
        each = max(left // len(open_ids), 1)
        for i in list(open_ids):
            give = min(each, wants[i] - shares[i], left)
            shares[i] += give
            left -= give
            if shares[i] >= wants[i]:
                open_ids.remove(i)
            if left == 0:
                break
    return shares


def _queued(campaign_id: int) -> int:
    """Released phones whose NOTIFY is still in the outbox (starts from the few pending
    outbox rows, not from the campaign's thousands of targets)."""
    return (PushTarget.select().join(OutboxNotify, on=(PushTarget.outbox_id == OutboxNotify.id))
            .where((OutboxNotify.status == "pending") & (PushTarget.campaign == campaign_id))
            .count())


def _release_targets(campaign: PushCampaign, n: int, switch: str, now: datetime) -> int:
    """Queue the next ``n`` waiting phones of ``campaign``; returns how many were released."""
    targets = list(PushTarget.select(PushTarget.id, PushTarget.device)
                   .where((PushTarget.campaign == campaign.id) & (PushTarget.state == "waiting"))
                   .order_by(PushTarget.id).limit(n))
    ids = [t.device_id for t in targets if t.device_id is not None]
    devices = {d.id: d for d in Device.select().where(Device.id.in_(ids))} if ids else {}
    tenants = {t.id: t for t in Tenant.select().where(
        Tenant.id.in_({d.tenant_id for d in devices.values()}))} if devices else {}
    # What each phone is registered as right now: the logged-in user, else its idle account
    # (hotdesk.admin.inventory.registered_endpoint, for a batch in one query).
    logged_in = dict(Session.select(Session.device, User.sip_username).join(User)
                     .where(Session.device.in_(ids) & Session.ended_at.is_null())
                     .tuples()) if ids else {}
    live = [t for t in targets if t.device_id in devices]
    queued = outbox.enqueue_many(
        [(d, tenants[d.tenant_id], logged_in.get(d.id) or d.idle_sip_username)
         for d in (devices[t.device_id] for t in live)], switch, now)
    outbox_ids = {t.id: queued[t.device_id] for t in live}
    if outbox_ids:  # one statement for the tick's targets, each with its own outbox row
        PushTarget.update(state="released", released_at=now, outbox_id=Case(
            PushTarget.id, list(outbox_ids.items()))).where(
            PushTarget.id.in_(list(outbox_ids))).execute()
    gone = [t.id for t in targets if t.id not in outbox_ids]
    if gone:
        PushTarget.update(state="skipped").where(PushTarget.id.in_(gone)).execute()
    return len(outbox_ids)


def _finished(campaign_id: int) -> bool:
    waiting = PushTarget.select().where((PushTarget.campaign == campaign_id)
                                        & (PushTarget.state == "waiting")).exists()
    return not waiting and _queued(campaign_id) == 0


def _finish(campaign: PushCampaign, now: datetime) -> None:
    PushCampaign.update(state="done", finished_at=now).where(
        PushCampaign.id == campaign.id).execute()
    p = progress(PushCampaign.get_by_id(campaign.id))
    audit.record("push_finished", tenant=campaign.tenant_id, actor="system",
                 campaign=campaign.id, sent=p.sent, failed=p.failed, skipped=p.skipped)
    log.info("push campaign %d finished: %d sent, %d failed, %d skipped", campaign.id,
             p.sent, p.failed, p.skipped)


class PacerLoop(SupervisedThread):
    """The release step every :data:`TICK_SECONDS` in a supervised thread of the worker,
    with its own ``push-pacer`` heartbeat. Any number of workers may run one."""

    name = "push-pacer"
    join_timeout = 5.0

    def __init__(self, config: Config, tick_seconds: float = TICK_SECONDS) -> None:
        super().__init__()
        self.config = config
        self.tick_seconds = tick_seconds
        self.monitor = LoopMonitor("push-pacer", node=config.metrics.node,
                                   stall_seconds=max(60.0, 20 * tick_seconds))

    def _loop(self) -> None:
        failing = False
        try:
            while not self._stop.is_set():
                try:
                    result = release(self.config)
                    if failing:
                        log.info("push pacer works again")
                        failing = False
                    if result.released:
                        log.debug("push pacer released %d phone(s)", result.released)
                except (OperationalError, InterfaceError) as exc:
                    if not failing:
                        log.warning("push pacer: database error, retrying: %s", exc)
                    failing = True
                    close_quietly(process_database)
                self.monitor.beat()
                self._stop.wait(self.tick_seconds)
        finally:
            close_quietly(process_database)


def run_until_idle(config: Config, stop: threading.Event | None = None,
                   tick_seconds: float = TICK_SECONDS) -> int:
    """Release steps until no campaign is running (``hotdesk notify push --wait``, the
    bench); returns the phones released."""
    total = 0
    while stop is None or not stop.is_set():
        result = release(config)
        total += result.released
        if not result.running:
            return total
        (stop or threading.Event()).wait(tick_seconds)
    return total
