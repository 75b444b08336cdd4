"""The heartbeat of a switch connection (AMI, inbound Event Socket) and its gauge."""

from __future__ import annotations

from hotdesk.ops import metrics
from hotdesk.ops.supervise import BeatWriter


class ConnectionReporter:
    """Publishes one switch connection's state: heartbeat row + per-process gauge.

    The adapters call :meth:`set` on every state change, from an event loop or a
    connection thread; it never blocks.
    """

    def __init__(self, component: str, address: str, node: str = "",
                 interval: float = 30.0) -> None:
        self.component = component
        self.address = address
        self.state = "down"
        self.detail = f"{address}: not connected yet"
        self.writer = BeatWriter(component, lambda: (self.state, self.detail), node, interval)

    def set(self, up: bool, detail: str = "") -> None:
        """The connection is now up/down; ``detail`` is the last error or a note."""
        self.state = "up" if up else "down"
        self.detail = f"{self.address}: {detail or ('connected' if up else 'down')}"
        metrics.set_connection(self.component, up)
        self.writer.wake()

    def start(self) -> None:
        metrics.set_connection(self.component, self.state == "up")
        self.writer.start()

    def stop(self, detail: str = "process stopped") -> None:
        """Last report: ``down`` with ``detail``, so nobody reads a stopped process as up."""
        self.set(False, detail)
        self.writer.stop()
