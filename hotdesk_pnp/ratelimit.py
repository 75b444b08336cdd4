"""Per-source limits: a flooding or broken phone must not cost more than a few lines of log
and a few database writes per minute."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

# How many sources are tracked at most; the least recently seen ones are forgotten.
MAX_SOURCES = 4096


class RateLimiter:
    """At most ``limit`` events per ``window`` seconds per key (a sliding window)."""

    def __init__(self, limit: int, window: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._events: dict[str, deque[float]] = {}

    def allow(self, key: str) -> bool:
        now = self.clock()
        events = self._events.pop(key, None) or deque()
        while events and events[0] <= now - self.window:
            events.popleft()
        allowed = len(events) < self.limit
        if allowed:
            events.append(now)
        self._events[key] = events  # re-inserted: dict order = least recently seen first
        while len(self._events) > MAX_SOURCES:
            self._events.pop(next(iter(self._events)))
        return allowed


class LogLimiter:
    """One log line per key per window; says how many were suppressed in between."""

    def __init__(self, window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self._last: dict[str, tuple[float, int]] = {}

    def should_log(self, key: str) -> tuple[bool, int]:
        """(log now?, number of lines suppressed since the last one)."""
        now = self.clock()
        last, suppressed = self._last.get(key, (None, 0))
        if last is None or now - last >= self.window:
            self._last[key] = (now, 0)
            if len(self._last) > MAX_SOURCES:
                self._last.pop(next(iter(self._last)))
            return True, suppressed
        self._last[key] = (last, suppressed + 1)
        return False, 0
