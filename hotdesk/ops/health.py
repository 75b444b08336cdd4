"""Heartbeats: each process records the state of what it depends on, in the shared database.

The AMI connection lives in a ``hotdesk agi`` process, the Event Socket in ``hotdesk
esl``, possibly on another node; ``hotdesk status``, ``/metrics`` and the web admin
run elsewhere. A row per (component, node) is how they all see it. Reporting never
raises: a process whose database is down must keep serving calls.
"""

from __future__ import annotations

import logging
import socket
import threading
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


class ConnectionReporter:
    """Publishes one switch connection's state: heartbeat row + per-process gauge.

    The adapters call :meth:`set` on every state change, from an event loop or a
    connection thread; it never blocks. A thread of its own writes the heartbeat at
    once and then every ``interval`` seconds (so a live process stays fresh in
    ``hotdesk status``), and its own database connection: a locked or absent
    database delays the heartbeat, never the switch connection.
    """

    def __init__(self, component: str, address: str, node: str = "",
                 interval: float = 30.0) -> None:
        self.component = component
        self.address = address
        self.node = node
        self.interval = interval
        self.state = "down"
        self.detail = f"{address}: not connected yet"
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def set(self, up: bool, detail: str = "") -> None:
        """The connection is now up/down; ``detail`` is the last error or a note."""
        from hotdesk.ops import metrics

        self.state = "up" if up else "down"
        self.detail = f"{self.address}: {detail or ('connected' if up else 'down')}"
        metrics.set_connection(self.component, up)
        self._wake.set()

    def start(self) -> None:
        from hotdesk.ops import metrics

        metrics.set_connection(self.component, self.state == "up")
        self._thread = threading.Thread(target=self._run, name=f"{self.component}-health",
                                        daemon=True)
        self._thread.start()

    def stop(self, detail: str = "process stopped") -> None:
        """Last report: ``down`` with ``detail``, so nobody reads a stopped process as up."""
        self.set(False, detail)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10.0)

    def _run(self) -> None:
        from hotdesk.store.models import database_proxy

        try:
            while not self._stop.is_set():
                self._wake.clear()
                if not report(self.component, self.state, self.detail, node=self.node):
                    _close_quietly(database_proxy)  # a dead connection: fresh one next time
                self._wake.wait(self.interval)
            report(self.component, self.state, self.detail, node=self.node)
        finally:
            _close_quietly(database_proxy)


def _close_quietly(db) -> None:  # type: ignore[no-untyped-def]
    try:
        if not db.is_closed():
            db.close()
    except Exception:  # noqa: BLE001 - a broken connection may fail to close
        log.debug("closing the heartbeat database connection failed", exc_info=True)
