"""``hotdesk worker``: the background jobs no call triggers.

Each tick ends sessions past their maximum login time or their daily logout time,
re-sends NOTIFYs phones never acted on (see :mod:`hotdesk.notify.reconcile`) or that
left a phone registered as the wrong account (:mod:`hotdesk.notify.confirm`), tidies
expired outbox claims and records a heartbeat. Every job decides from the database
alone and re-checks under the service's write lock, so a worker that was down
catches up on start, and several workers on several nodes never do a job twice.
"""

from __future__ import annotations

import logging
import threading
import time
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from peewee import InterfaceError, OperationalError

from hotdesk.calls.service import HotdeskService, Outcome
from hotdesk.notify import confirm, reconcile
from hotdesk.notify.drain import drain_round
from hotdesk.notify.outbox import NotifySender, worker_id
from hotdesk.ops import health, metrics
from hotdesk.ops.supervise import Backoff, describe
from hotdesk.provisioning.dst import dst_resync
from hotdesk.settings import Config, parse_hhmm
from hotdesk.store.db import close_quietly
from hotdesk.store.models import Session, Tenant, process_database

log = logging.getLogger(__name__)


def last_cutoff(now: datetime, hhmm: str, tz_name: str) -> datetime | None:
    """The most recent daily logout moment at or before ``now`` (both naive UTC).

    Looking back to the last cut-off, instead of firing "at" the time, is what makes
    the daily logout survive worker downtime: a worker started at 02:00 still finds
    the sessions that began before yesterday's 00:00 cut-off.
    """
    parsed = parse_hhmm(hhmm) if hhmm else None
    if parsed is None:
        return None
    zone = zoneinfo.ZoneInfo(tz_name)
    local_now = now.replace(tzinfo=UTC).astimezone(zone)
    for days_back in (0, 1, 2):
        day = (local_now - timedelta(days=days_back)).date()
        local_cut = datetime(day.year, day.month, day.day, parsed[0], parsed[1], tzinfo=zone)
        cut = local_cut.astimezone(UTC).replace(tzinfo=None)
        if cut <= now:
            return cut
    return None  # pragma: no cover - two days back is always in the past


def daily_logout_time(tenant: Tenant, config: Config) -> str:
    return tenant.daily_logout_time or config.policy.daily_logout_time


def daily_logout(service: HotdeskService, config: Config, now: datetime | None = None) -> int:
    """End every session that started before its tenant's most recent daily cut-off."""
    now = now or service.clock()
    ended = 0
    for tenant in Tenant.select():
        cutoff = last_cutoff(now, daily_logout_time(tenant, config), config.policy.timezone)
        if cutoff is None:
            continue
        due = [(s.device_id, s.id) for s in Session.select(Session.id, Session.device)
               .where((Session.tenant == tenant) & Session.ended_at.is_null()
                      & (Session.started_at < cutoff))]
        for device_id, session_id in due:
            outcome = service.logout(device_id, reason="daily_logout", actor="worker",
                                     session_id=session_id)
            if outcome is Outcome.LOGGED_OUT:
                ended += 1
                log.info("session %d on device %d ended: daily logout at %s %s", session_id,
                         device_id, daily_logout_time(tenant, config), config.policy.timezone)
    return ended


def expire_sessions(service: HotdeskService) -> int:
    """Max login time: the service ends the sessions; this only logs and counts."""
    ended = service.expire_sessions()
    if ended:
        log.info("%d session(s) ended: maximum login time reached", ended)
    return ended


@dataclass
class TickResult:
    expired: int = 0
    daily: int = 0
    requeued: int = 0
    flagged: int = 0
    released: int = 0
    unconfirmed: int = 0

    dst: int = 0
    drained: dict[str, int] = field(default_factory=dict)
    switch: str = ""

    def summary(self) -> str:
        parts = [f"expired={self.expired}", f"daily_logout={self.daily}",
                 f"requeued={self.requeued}", f"flagged_pending={self.flagged}",
                 f"claims_released={self.released}",
                 f"registration_requeued={self.unconfirmed}", f"dst_resync={self.dst}"]
        if self.drained:
            parts.append("notify " + ",".join(f"{k}={v}" for k, v in self.drained.items() if v))
        if self.switch:
            parts.append(self.switch)
        return " ".join(parts)


def tick(service: HotdeskService, config: Config, sender: NotifySender | None = None,
         owner: str | None = None, now: datetime | None = None,
         switch_upkeep: Callable[[], str] | None = None) -> TickResult:
    """One pass over every job; database errors propagate to :func:`run_worker`.

    ``switch_upkeep``: the switch jobs (hotdesk.switch.upkeep: account drift, idle
    accounts), run before the outbox drain so their NOTIFYs go out in the same tick."""
    result = TickResult()
    if switch_upkeep is not None:
        result.switch = switch_upkeep()
    result.expired = expire_sessions(service)
    result.daily = daily_logout(service, config, now)
    result.released = reconcile.release_expired_claims(now)
    result.dst = dst_resync(service.db, config, now)
    rec = reconcile.reconcile(config, now or service.clock())
    result.requeued, result.flagged = rec.requeued, rec.flagged
    result.unconfirmed = confirm.check(config, now or service.clock()).requeued
    if sender is not None:
        result.drained = drain_round(sender, config, owner or worker_id())
    for action, n in (("expired", result.expired), ("daily_logout", result.daily),
                      ("requeued", result.requeued), ("flagged_pending", result.flagged),
                      ("claims_released", result.released),
                      ("registration_requeued", result.unconfirmed),
                      ("dst_resync", result.dst)):
        if n:
            metrics.WORKER_ACTIONS.labels(action=action).inc(n)
    return result


def run_worker(service: HotdeskService, config: Config, stop_event: threading.Event,
               sender: NotifySender | None = None, max_ticks: int | None = None,
               on_tick: Callable[[TickResult], None] | None = None,
               switch_upkeep: Callable[[], str] | None = None) -> int:
    """Tick every ``[worker] interval_seconds`` until ``stop_event``; returns ticks run.

    With a sender the worker also drains the outbox between ticks, every
    ``[notify] poll_seconds``. A locked or restarted database is logged and retried
    on the next tick. Any other error is logged with its traceback, shown in the
    ``worker`` heartbeat and retried after a doubling wait: the loop never ends on it.
    """
    owner = worker_id()
    backoff = Backoff(0.5, max(config.worker.interval_seconds, 0.5))
    ticks = 0
    next_tick = 0.0
    clock = time.monotonic
    while not stop_event.is_set() and (max_ticks is None or ticks < max_ticks):
        try:
            if clock() >= next_tick:
                ticks += 1
                result = tick(service, config, sender, owner, switch_upkeep=switch_upkeep)
                next_tick = clock() + config.worker.interval_seconds
                log.info("worker tick %d: %s", ticks, result.summary())
                health.report("worker", "up", result.summary(), node=config.metrics.node)
                if on_tick is not None:
                    on_tick(result)
            elif sender is not None:
                drain_round(sender, config, owner)
            backoff.reset()
        except (OperationalError, InterfaceError) as exc:
            log.warning("worker: database unavailable, retrying next tick: %s", exc)
            next_tick = clock() + min(config.worker.interval_seconds, 5.0)
            close_quietly(process_database)
        except Exception as exc:  # noqa: BLE001 - a bug in one job must not end the worker
            delay = backoff.next()
            log.error("worker: tick failed (%s); retrying in %gs", describe(exc), delay,
                      exc_info=exc)
            health.report("worker", "down", f"tick failed: {describe(exc)}; retrying in "
                          f"{delay:g}s", node=config.metrics.node)
            close_quietly(process_database)
            if max_ticks is not None and ticks >= max_ticks:
                raise  # `hotdesk worker --once`: the caller sees the failure (exit status)
            next_tick = clock() + delay
            stop_event.wait(delay)
            continue
        if max_ticks is not None and ticks >= max_ticks:
            break
        wait = config.notify.poll_seconds if sender is not None else next_tick - clock()
        stop_event.wait(max(min(wait, config.worker.interval_seconds), 0.05))
    health.report("worker", "down", "stopped", node=config.metrics.node)
    return ticks

