"""A generic outbox drain loop and the registry of NOTIFY senders it can run with.

The switch adapters drain the outbox inside their own processes with their own
connection; ``hotdesk worker`` can drain too, with a sender chosen by name in
``[notify] sender``. Adapters register their factory with :func:`register_sender`;
any importable ``"module:factory"`` works as well, so a deployment can plug in its
own without touching this file.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from peewee import InterfaceError, OperationalError

from hotdesk import metrics, outbox
from hotdesk.config import Config
from hotdesk.models import OutboxNotify, utcnow
from hotdesk.outbox import NotifySender, NotifyTarget

log = logging.getLogger(__name__)

SenderFactory = Callable[[Config], NotifySender]


class LogSender:
    """Pretends every NOTIFY went out and logs it: for dry runs and for trying a setup."""

    def send(self, target: NotifyTarget) -> None:
        log.info("NOTIFY (log sender, not sent) %s to %s%s", target.event, target.endpoint,
                 f" at {target.contact_uri}" if target.contact_uri else "")


_SENDERS: dict[str, SenderFactory] = {"log": lambda config: LogSender()}


def register_sender(name: str, factory: SenderFactory) -> None:
    """Make ``[notify] sender = name`` build its sender with ``factory(config)``."""
    _SENDERS[name] = factory


def make_sender(name: str, config: Config) -> NotifySender | None:
    """The sender called ``name``; None for ``none`` (this process does not drain)."""
    if name in ("", "none"):
        return None
    if name in _SENDERS:
        return _SENDERS[name](config)
    module_name, sep, attr = name.partition(":")
    if not sep:
        raise ValueError(f"[notify] sender = {name!r}: unknown sender; use none, "
                         f"{', '.join(sorted(_SENDERS))} or module:factory")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"[notify] sender = {name!r}: cannot load it: {exc}") from None
    return factory(config)


class MeasuredSender:
    """Wraps a sender to feed the NOTIFY metrics, so every drain loop reports the same."""

    def __init__(self, inner: NotifySender) -> None:
        self.inner = inner

    def send(self, target: NotifyTarget) -> None:
        started = time.monotonic()
        self.inner.send(target)
        metrics.NOTIFY_SEND_SECONDS.observe(time.monotonic() - started)
        row = (OutboxNotify.select(OutboxNotify.created_at)
               .where(OutboxNotify.id == target.outbox_id).first())
        if row is not None:
            delay = (utcnow() - row.created_at).total_seconds()
            metrics.NOTIFY_QUEUE_DELAY_SECONDS.observe(max(delay, 0.0))


@dataclass
class DrainTotals:
    rounds: int = 0
    errors: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {
        "sent": 0, "retry": 0, "failed": 0, "switch_down": 0})


def drain_round(sender: NotifySender, config: Config, owner: str,
                batch: int = 50) -> dict[str, int]:
    """One ``drain_once`` with metrics; database errors propagate to the loop."""
    counts = outbox.drain_once(MeasuredSender(sender), config.notify, owner, limit=batch)
    for result, n in counts.items():
        if n:
            metrics.NOTIFY_RESULTS.labels(result=result).inc(n)
    return counts


def run_drain(sender: NotifySender, config: Config, stop_event: threading.Event,
              owner: str | None = None, batch: int = 50,
              max_rounds: int | None = None) -> DrainTotals:
    """Drain until ``stop_event`` is set (or ``max_rounds``): bounded sleeps, never raises.

    A full batch is followed at once by the next round; otherwise the loop waits
    ``[notify] poll_seconds``. A locked or restarted database is logged and retried
    on the next round, so a flapping database never kills the process.
    """
    owner = owner or outbox.worker_id()
    totals = DrainTotals()
    from hotdesk.models import database_proxy

    while not stop_event.is_set() and (max_rounds is None or totals.rounds < max_rounds):
        totals.rounds += 1
        try:
            counts = drain_round(sender, config, owner, batch)
        except (OperationalError, InterfaceError) as exc:
            totals.errors += 1
            log.warning("outbox drain: database error, retrying in %.1fs: %s",
                        config.notify.poll_seconds, exc)
            _reset_connection(database_proxy)
            stop_event.wait(config.notify.poll_seconds)
            continue
        for key, n in counts.items():
            totals.counts[key] += n
        busy = sum(counts.values()) >= batch and not counts["switch_down"]
        if not busy:
            stop_event.wait(config.notify.poll_seconds)
    return totals


def _reset_connection(db) -> None:  # type: ignore[no-untyped-def]
    """Drop a broken connection so the next query opens a fresh one."""
    try:
        if not db.is_closed():
            db.close()
    except Exception:  # noqa: BLE001 - a dead connection may fail to close; that is fine
        log.debug("closing the broken database connection failed", exc_info=True)
