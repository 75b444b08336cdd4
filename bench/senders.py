"""Senders for the benchmark: instant, and one that is "down" until a file appears."""

from __future__ import annotations

import os

from hotdesk.notify.outbox import NotifyTarget, SwitchDown
from hotdesk.settings import Config


class BenchSender:
    def __init__(self) -> None:
        self.ready = os.environ["HOTDESK_BENCH_READY_DIR"]
        self.up_file = os.environ.get("HOTDESK_BENCH_UP_FILE", "")
        with open(os.path.join(self.ready, str(os.getpid())), "w") as fh:
            fh.write("ready")

    def send(self, target: NotifyTarget) -> None:
        if self.up_file and not os.path.exists(self.up_file):
            raise SwitchDown("bench switch is down")


def factory(config: Config) -> BenchSender:
    return BenchSender()
