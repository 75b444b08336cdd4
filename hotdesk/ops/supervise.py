"""Supervised background loops: a failing loop is logged, restarted with backoff and
reported in a heartbeat of its own.

Without this a drain loop that hit an unexpected exception (a bug, a malformed row, a
template error) ended for good while the switch connection's heartbeat still said
"up": NOTIFYs silently stopped going out. Each loop now has its own heartbeat row
(``hotdesk status``, the dashboard, ``hotdesk_component_up``): ``up`` while its rounds
run, ``down`` with the error while it waits to restart, or when no round has run for
``stall_seconds``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable

from hotdesk.ops import health
from hotdesk.store.db import close_quietly
from hotdesk.store.models import process_database

log = logging.getLogger(__name__)

Snapshot = Callable[[], tuple[str, str]]


class WakeableThread:
    """A daemon thread running :meth:`run` until :meth:`stop`; :meth:`wake` cuts its wait."""

    name = "background"
    join_timeout = 10.0

    def __init__(self) -> None:
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(self.join_timeout)


class BeatWriter(WakeableThread):
    """Keeps heartbeat ``component`` fresh from ``snapshot()`` = (state, detail).

    Event loops and connection threads only call :meth:`wake` (never blocking); this
    thread, with its own database connection, writes the state at once and every
    ``interval`` seconds, so a locked or absent database delays a heartbeat, never a
    call or a switch connection. :meth:`stop` writes the last state.
    """

    def __init__(self, component: str, snapshot: Snapshot, node: str = "",
                 interval: float = 30.0) -> None:
        super().__init__()
        self.component = component
        self.name = f"{component}-health"
        self.snapshot = snapshot
        self.node = node
        self.interval = interval

    def _write(self) -> bool:
        state, detail = self.snapshot()
        return health.report(self.component, state, detail, node=self.node)

    def run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.clear()
                self._write()
                # Nothing held between beats: a fresh (or pooled) connection each time.
                close_quietly(process_database)
                self._wake.wait(self.interval)
            self._write()
        finally:
            close_quietly(process_database)


class Backoff:
    """Doubling delays from ``start`` up to ``maximum``; :meth:`reset` after a success."""

    def __init__(self, start: float = 0.5, maximum: float = 30.0) -> None:
        self.start = start
        self.maximum = max(maximum, start)
        self.delay = start

    def next(self) -> float:
        delay = self.delay
        self.delay = min(self.delay * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self.delay = self.start


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class LoopMonitor:
    """The health of one background loop, published as heartbeat ``component``.

    The loop calls :meth:`beat` after every round; its supervisor calls :meth:`failed`
    when the loop raised. Both are cheap and never block (the heartbeat row is written
    by a :class:`~hotdesk.ops.reporters.BeatWriter` thread).
    """

    def __init__(self, component: str, node: str = "", stall_seconds: float | None = None,
                 backoff: Backoff | None = None, interval: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.component = component
        self.stall_seconds = stall_seconds
        self.backoff = backoff or Backoff()
        self.clock = clock
        self.restarts = 0
        self.last_error = ""
        self.failing = False
        self.stopped = False
        self.retry_in = 0.0
        self.last_beat = clock()
        self.writer = BeatWriter(component, self.snapshot, node, interval)

    def start(self) -> None:
        self.writer.start()

    def stop(self) -> None:
        self.stopped = True
        self.writer.stop()

    def beat(self) -> None:
        """One round ran: the loop is alive (and, after a failure, works again)."""
        self.last_beat = self.clock()
        if self.failing:
            self.failing = False
            self.backoff.reset()
            log.info("%s runs again after %d restart(s)", self.component, self.restarts)
            self.writer.wake()

    def failed(self, exc: BaseException) -> float:
        """The loop raised: log it with its traceback; returns the wait before the restart."""
        self.restarts += 1
        self.failing = True
        self.last_error = describe(exc)
        self.retry_in = self.backoff.next()
        log.error("%s failed (%s); restarting in %gs (restart %d)", self.component,
                  self.last_error, self.retry_in, self.restarts, exc_info=exc)
        self.writer.wake()
        return self.retry_in

    def snapshot(self) -> tuple[str, str]:
        """(state, detail) as the heartbeat shows it."""
        if self.stopped:
            return "down", "stopped"
        if self.failing:
            return "down", (f"failed: {self.last_error}; restarting in {self.retry_in:g}s "
                            f"(restart {self.restarts})")
        idle = self.clock() - self.last_beat
        if self.stall_seconds is not None and idle > self.stall_seconds:
            return "down", f"no round for {idle:.0f}s (stuck?)"
        if self.restarts:
            return "up", f"running; {self.restarts} restart(s), last: {self.last_error}"
        return "up", "running"


class SupervisedThread(WakeableThread):
    """A :class:`WakeableThread` whose :meth:`_loop` runs under :func:`run_supervised`,
    reporting to ``self.monitor`` (set by the subclass), whose heartbeat starts and
    stops with the thread."""

    monitor: LoopMonitor

    def _loop(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        run_supervised(self.monitor, self._loop, self._stop)

    def start(self) -> None:
        self.monitor.start()
        super().start()

    def stop(self) -> None:
        super().stop()
        self.monitor.stop()


def run_supervised(monitor: LoopMonitor, loop: Callable[[], object],
                   stop: threading.Event) -> None:
    """Run ``loop()`` in this thread until ``stop`` is set, restarting it whenever it
    raises (or returns while ``stop`` is not set) after the monitor's backoff."""
    while not stop.is_set():
        try:
            loop()
        except Exception as exc:  # noqa: BLE001 - the point: nothing ends the loop for good
            stop.wait(monitor.failed(exc))
            continue
        if not stop.is_set():
            stop.wait(monitor.failed(RuntimeError("the loop returned on its own")))


async def run_supervised_async(monitor: LoopMonitor, loop: Callable[[], Awaitable[object]],
                               stop: asyncio.Event) -> None:
    """:func:`run_supervised` for a coroutine loop on the running event loop."""
    while not stop.is_set():
        try:
            await loop()
        except Exception as exc:  # noqa: BLE001 - the point: nothing ends the loop for good
            delay = monitor.failed(exc)
        else:
            if stop.is_set():
                break
            delay = monitor.failed(RuntimeError("the loop returned on its own"))
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            pass
