"""A generic outbox drain loop, and the senders ``hotdesk worker`` can drain with.

The switch adapters drain the outbox inside their own processes with their own
connection; ``hotdesk worker`` can drain too, with the sender named in ``[notify]
sender``: ``none``, ``log`` (a dry run) or any importable ``"module:factory"``, so a
deployment can plug in its own without touching this file.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from peewee import InterfaceError, OperationalError

from hotdesk.notify import outbox
from hotdesk.notify.outbox import NotifySender, NotifyTarget
from hotdesk.ops import metrics
from hotdesk.settings import Config
from hotdesk.store.db import close_quietly
from hotdesk.store.models import OutboxNotify, process_database, utcnow

log = logging.getLogger(__name__)


class LogSender:
    """Pretends every NOTIFY went out and logs it: for dry runs and for trying a setup."""

    def send(self, target: NotifyTarget) -> None:
        log.info("NOTIFY (log sender, not sent) %s to %s%s", target.event, target.endpoint,
                 f" at {target.contact_uri}" if target.contact_uri else "")


def make_sender(name: str, config: Config) -> NotifySender | None:
    """The sender called ``name``; None for ``none`` (this process does not drain)."""
    if name in ("", "none"):
        return None
    if name == "log":
        return LogSender()
    module_name, sep, attr = name.partition(":")
    if not sep:
        raise ValueError(f"[notify] sender = {name!r}: unknown sender; use none, log or "
                         "module:factory (the switch's own sender runs inside hotdesk agi "
                         "or hotdesk esl)")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"[notify] sender = {name!r}: cannot load it: {exc}") from None
    return factory(config)


class MeasuredSender:
    """Wraps a sender to feed the NOTIFY metrics, so every drain loop reports the same.

    Has ``send_many`` (:class:`~hotdesk.notify.outbox.PipelinedSender`) when the
    wrapped sender has it."""

    def __init__(self, inner: NotifySender) -> None:
        self.inner = inner
        if hasattr(inner, "send_many"):
            self.send_many = self._send_many

    def send(self, target: NotifyTarget) -> None:
        started = time.monotonic()
        self.inner.send(target)
        metrics.NOTIFY_SEND_SECONDS.observe(time.monotonic() - started)
        self._queued(target)

    def _send_many(self, targets: Sequence[NotifyTarget]) -> list[BaseException | None]:
        started = time.monotonic()
        results = self.inner.send_many(targets)  # type: ignore[attr-defined]
        took = time.monotonic() - started  # each send of the batch was in flight this long
        for target, error in zip(targets, results, strict=True):
            if error is None:
                metrics.NOTIFY_SEND_SECONDS.observe(took)
                self._queued(target)
        return results  # type: ignore[no-any-return]

    @staticmethod
    def _queued(target: NotifyTarget) -> None:
        created = target.created_at
        if created is None:  # a target built without its row's time: read it
            row = (OutboxNotify.select(OutboxNotify.created_at)
                   .where(OutboxNotify.id == target.outbox_id).first())
            created = row.created_at if row is not None else None
        if created is not None:
            delay = (utcnow() - created).total_seconds()
            metrics.NOTIFY_QUEUE_DELAY_SECONDS.observe(max(delay, 0.0))


class RenderingSender:
    """Writes the phone's files into ``[provisioning] render_dir`` right before its NOTIFY.

    The NOTIFY is what makes the phone fetch, so this is the moment its files must
    be current; every drain loop (agi, esl, worker) goes through here, so files are
    written in one place. A template error is logged and the NOTIFY still goes: the
    HTTP server renders live and falls back to the last good file.
    """

    def __init__(self, inner: NotifySender, config: Config) -> None:
        from hotdesk.switch.connect import account_reader

        self.inner = inner
        self.config = config
        self.accounts = account_reader(config)  # users' SIP accounts, read live
        if hasattr(inner, "send_many"):
            self.send_many = self._send_many

    def send(self, target: NotifyTarget) -> None:
        if self.config.provisioning.render_dir:
            self._render(target.outbox_id)
        self.inner.send(target)

    def _send_many(self, targets: Sequence[NotifyTarget]) -> list[BaseException | None]:
        if self.config.provisioning.render_dir:
            for target in targets:
                self._render(target.outbox_id)
        return self.inner.send_many(targets)  # type: ignore[attr-defined, no-any-return]

    def _render(self, outbox_id: int) -> None:
        from hotdesk.provisioning import render
        from hotdesk.store.models import Device

        row = (OutboxNotify.select(OutboxNotify.device).where(OutboxNotify.id == outbox_id)
               .first())
        device = Device.get_or_none(Device.id == row.device_id) if row is not None else None
        if device is None:
            return
        try:
            env = _environment(self.config.provisioning.templates_dir, self.config)
            profile = render.profile_for(device, self.config, accounts=self.accounts)
            render.write_device_files(env, device, self.config, profile)
        except (render.TemplateError, render.AccountError, OSError) as exc:
            log.error("could not write the files of phone %s into render_dir: %s",
                      device.mac, exc)


_ENVIRONMENTS: dict[str, object] = {}


def _environment(templates_dir: str, config: Config):  # type: ignore[no-untyped-def]
    """One Jinja2 environment per template directory: templates compile once."""
    from hotdesk.provisioning import render

    env = _ENVIRONMENTS.get(templates_dir)
    if env is None:
        env = _ENVIRONMENTS[templates_dir] = render.make_environment(config)
    return env


@dataclass
class DrainTotals:
    rounds: int = 0
    errors: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {
        "sent": 0, "retry": 0, "failed": 0, "switch_down": 0})


def drain_round(sender: NotifySender, config: Config, owner: str,
                batch: int = 50) -> dict[str, int]:
    """One ``drain_once`` with metrics and render_dir files; database errors propagate."""
    counts = outbox.drain_once(MeasuredSender(RenderingSender(sender, config)), config.notify,
                               owner, limit=batch)
    for result, n in counts.items():
        if n:
            metrics.NOTIFY_RESULTS.labels(result=result).inc(n)
    return counts


class Drainer:
    """Drain rounds for one loop, whatever runs the loop (a thread, an asyncio task).

    A locked or restarted database is logged once when it starts failing and once
    when it works again, never once per round; the broken connection is dropped in
    the thread that owns it so the next round opens a fresh one.
    """

    def __init__(self, sender: NotifySender, config: Config, owner: str | None = None,
                 batch: int = 50) -> None:
        self.sender = sender
        self.config = config
        self.owner = owner or outbox.worker_id()
        self.batch = batch
        self.failing = False

    def round(self) -> dict[str, int] | None:
        """Counts by result, or None when the database failed (retry next round)."""
        try:
            counts = drain_round(self.sender, self.config, self.owner, self.batch)
        except (OperationalError, InterfaceError) as exc:
            if not self.failing:
                log.warning("outbox drain: database error, retrying every %gs: %s",
                            self.config.notify.poll_seconds, exc)
            self.failing = True
            close_quietly(process_database)
            return None
        if self.failing:
            log.info("outbox drain works again")
            self.failing = False
        return counts

    def busy(self, counts: dict[str, int]) -> bool:
        """A full batch went out: run the next round at once."""
        return sum(counts.values()) >= self.batch and not counts["switch_down"]


def drain_stall_seconds(config: Config) -> float:
    """A drain loop that has not finished a round for this long is reported stuck: a
    round waits at most ``poll_seconds`` plus a batch of bounded sends."""
    return max(10 * config.notify.poll_seconds, 2 * config.notify.lease_seconds, 60.0)


def run_drain(sender: NotifySender, config: Config, stop_event: threading.Event,
              owner: str | None = None, batch: int = 50,
              max_rounds: int | None = None,
              wake: threading.Event | None = None,
              on_round: Callable[[], None] | None = None) -> DrainTotals:
    """Drain until ``stop_event`` is set (or ``max_rounds``): bounded sleeps, never raises.

    A full batch is followed at once by the next round; otherwise the loop waits
    ``[notify] poll_seconds``, or until ``wake`` is set (a call queued a NOTIFY; the
    caller sets ``wake`` too when it sets ``stop_event``). A locked or restarted
    database is logged and retried on the next round. ``on_round`` is told after
    every round (a supervisor's heartbeat); any other error propagates to the caller,
    which restarts the loop (:func:`hotdesk.ops.supervise.run_supervised`).
    """
    drainer = Drainer(sender, config, owner, batch)
    totals = DrainTotals()
    try:
        while not stop_event.is_set() and (max_rounds is None or totals.rounds < max_rounds):
            totals.rounds += 1
            counts = drainer.round()
            if on_round is not None:
                on_round()
            if counts is None:
                totals.errors += 1
            else:
                for key, n in counts.items():
                    totals.counts[key] += n
                if drainer.busy(counts):
                    continue
            if wake is None:
                stop_event.wait(config.notify.poll_seconds)
            else:
                wake.wait(config.notify.poll_seconds)
                wake.clear()
    finally:
        close_quietly(process_database)  # this thread's connection ends with the loop
    return totals
