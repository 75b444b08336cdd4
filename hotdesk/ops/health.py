"""Heartbeats: each process records the state of what it depends on, in the shared database.

The AMI connection lives in a ``hotdesk agi`` process, the Event Socket in ``hotdesk
esl``, possibly on another node; ``hotdesk status``, ``/metrics`` and the web admin
run elsewhere. A row per (component, node) is how they all see it. Reporting never
raises: a process whose database is down must keep serving calls. The threads that keep
the rows fresh are in :mod:`hotdesk.ops.reporters`.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from peewee import Case, PeeweeException

from hotdesk.store.models import Heartbeat, utcnow

log = logging.getLogger(__name__)

STATES = ("up", "down")


def node_name(configured: str = "") -> str:
    return configured or socket.gethostname()


def report(component: str, state: str, detail: str = "", node: str | None = None,
           now: datetime | None = None) -> bool:
    """Record ``component`` on this node as ``up``/``down``; False if it could not be written.

    ``since`` moves only when the state changes, so it reads "down since 10:02".
    """
    if state not in STATES:
        raise ValueError(f"heartbeat state must be one of {STATES}, not {state!r}")
    now = now or utcnow()
    node = node_name(node or "")
    try:
        (Heartbeat.insert(component=component, node=node, state=state, since=now,
                          updated_at=now, detail=detail[:500])
         .on_conflict(conflict_target=[Heartbeat.component, Heartbeat.node],
                      update={Heartbeat.state: state,
                              Heartbeat.since: Case(None, [(Heartbeat.state == state,
                                                            Heartbeat.since)], now),
                              Heartbeat.updated_at: now,
                              Heartbeat.detail: detail[:500]})
         .execute())
    except PeeweeException as exc:
        log.warning("could not record %s heartbeat (%s): %s", component, state, exc)
        return False
    return True


@dataclass(frozen=True)
class Beat:
    component: str
    node: str
    state: str
    since: datetime
    updated_at: datetime
    detail: str

    def age(self, now: datetime) -> timedelta:
        return now - self.updated_at


def read_all() -> list[Beat]:
    return [Beat(h.component, h.node, h.state, h.since, h.updated_at, h.detail)
            for h in Heartbeat.select().order_by(Heartbeat.component, Heartbeat.node)]


def prune(older_than: timedelta, now: datetime | None = None) -> int:
    """Forget components that have not reported for ``older_than`` (retired nodes)."""
    now = now or utcnow()
    return Heartbeat.delete().where(Heartbeat.updated_at < now - older_than).execute()
