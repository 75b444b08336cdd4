"""The bounded, batched path from a switch connection to the registration tables.

The connection thread or event loop must never wait for the database: it hands each
translated event to :meth:`RegistrationWriter.put` (a deque append) and goes on
reading. A thread of its own writes them in batches (up to ``[registrations]
batch_max`` per transaction, at most ``flush_seconds`` late), so 10,000 phones
re-registering after a switch restart cost a few transactions, not 10,000. When the
database is slower than the switch for long, the buffer stops at ``buffer_max``
events and the oldest are dropped (counted, logged once per episode): the next full
listing repairs whatever they would have said.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime

from peewee import PeeweeException

from hotdesk.ops.reporters import ConnectionReporter
from hotdesk.settings import Config, RegistrationsConfig
from hotdesk.store.db import close_quietly
from hotdesk.store.models import process_database
from hotdesk.switch import registrations as regs

log = logging.getLogger(__name__)


class RegistrationWriter:
    def __init__(self, switch: str, config: RegistrationsConfig,
                 on_listing: Callable[[bool, str], None] = lambda up, detail: None,
                 index_ttl: float = 2.0) -> None:
        self.switch = switch
        self.config = config
        # Told (True, detail) once a full listing is stored: the watcher is live.
        self.on_listing = on_listing
        self.index_ttl = index_ttl
        self.written = 0
        self.dropped = 0
        self._buffer: deque[regs.Change] = deque()
        self._listing: tuple[list[regs.ContactSeen], datetime] | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._index: tuple[float, regs.DeviceIndex] | None = None
        self.health: ConnectionReporter | None = None

    # -- called from the switch connection (never blocks) -------------------------------

    def put(self, change: regs.Change) -> None:
        with self._lock:
            if len(self._buffer) >= self.config.buffer_max:
                self._buffer.popleft()
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 10000 == 0:
                    log.warning("registration buffer full (%d events): the database is "
                                "behind; %d oldest event(s) dropped, the next listing "
                                "repairs them", self.config.buffer_max, self.dropped)
            self._buffer.append(change)
            full = len(self._buffer) >= self.config.batch_max
        self._idle.clear()
        if full:
            self._wake.set()

    def listing(self, contacts: Sequence[regs.ContactSeen], started_at: datetime) -> None:
        """A complete listing asked for at ``started_at``; replaces what the tables hold."""
        with self._lock:
            self._listing = (list(contacts), started_at)
        self._idle.clear()
        self._wake.set()

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"{self.switch}-registrations",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10.0)
        if self.health is not None:
            self.health.stop()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything handed over so far is written (tests, shutdown)."""
        self._wake.set()
        return self._idle.wait(timeout)

    # -- the writer thread --------------------------------------------------------------

    def _take(self) -> tuple[list[regs.Change], tuple | None]:
        with self._lock:
            n = min(len(self._buffer), self.config.batch_max)
            batch = [self._buffer.popleft() for _ in range(n)]
            listing, self._listing = self._listing, None
        return batch, listing

    def _device_index(self, batch: list[regs.Change]) -> regs.DeviceIndex:
        """Who is expected where: re-read at most every ``index_ttl`` seconds in a storm,
        at once when the batch names an account it does not know (a login just now)."""
        now = time.monotonic()
        stale = self._index is None or now - self._index[0] > self.index_ttl
        if not stale and self._index is not None:
            index = self._index[1]
            stale = any(not index.knows(c.account) for c in batch)
        if stale:
            self._index = (now, regs.DeviceIndex())
        return self._index[1]

    def _run(self) -> None:
        """Supervised: an unexpected error loses that batch (logged), never the thread."""
        try:
            while True:
                self._wake.wait(self.config.flush_seconds)
                self._wake.clear()
                try:
                    while self._write_once():
                        pass
                    if self._stop.is_set():
                        self._write_once()
                        return
                except Exception:  # noqa: BLE001 - the watcher must outlive a bad batch
                    log.exception("%s registrations: a batch could not be stored; the next "
                                  "listing repairs it", self.switch)
                    self._stop.wait(1.0)
        finally:
            close_quietly(process_database)

    def _write_once(self) -> bool:
        """Write one batch (a listing first); True when more is waiting."""
        batch, listing = self._take()
        if not batch and listing is None:
            self._idle.set()
            return False
        try:
            if listing is not None:
                self._index = None  # a (re)connect: read the phones afresh
                written = regs.replace_all(listing[0], self.switch, listing[1])
                self.on_listing(True, f"{len(listing[0])} contact(s) listed")
                log.info("%s registrations: listing of %d contact(s) stored (%d row(s) "
                         "changed)", self.switch, len(listing[0]), written)
            if batch:
                self.written += regs.apply(batch, self.switch, self._device_index(batch))
        except PeeweeException as exc:
            log.warning("%s registrations: database unavailable, %d event(s) wait: %s",
                        self.switch, len(batch), exc)
            with self._lock:  # put them back in front, in order; the bound still holds
                self._buffer.extendleft(reversed(batch))
                while len(self._buffer) > self.config.buffer_max:
                    self._buffer.popleft()
                    self.dropped += 1
                if listing is not None and self._listing is None:
                    self._listing = listing
            close_quietly(process_database)
            self._stop.wait(1.0)
            return False
        with self._lock:
            return bool(self._buffer) or self._listing is not None



def reporting_writer(switch: str, config: Config, address: str) -> RegistrationWriter | None:
    """The writer of a watcher on ``address``, its liveness published as heartbeat component
    ``registrations`` (up once a listing is stored); None when ``[registrations] watch``
    is off."""
    if not config.registrations.watch:
        log.info("[registrations] watch is off: registrations are not observed")
        return None
    health = ConnectionReporter(regs.COMPONENT, address, node=config.metrics.node)
    health.start()
    writer = RegistrationWriter(switch, config.registrations, on_listing=health.set)
    writer.health = health
    return writer
