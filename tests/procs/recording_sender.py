"""A NOTIFY sender for subprocess tests: appends one line per send to a file.

``[notify] sender = tests.procs.recording_sender:factory``; the file is named by
HOTDESK_TEST_SEND_LOG. Each line is written with one O_APPEND write, so lines from
several processes never interleave.
"""

from __future__ import annotations

import os
import time

from hotdesk.notify.outbox import NotifyTarget
from hotdesk.settings import Config


class RecordingSender:
    def __init__(self, path: str, delay: float) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.delay = delay
        os.write(self.fd, f"ready {os.getpid()}\n".encode())

    def send(self, target: NotifyTarget) -> None:
        if self.delay:
            time.sleep(self.delay)
        os.write(self.fd, f"sent {os.getpid()} {target.outbox_id} {target.endpoint}\n".encode())


def factory(config: Config) -> RecordingSender:
    return RecordingSender(os.environ["HOTDESK_TEST_SEND_LOG"],
                           float(os.environ.get("HOTDESK_TEST_SEND_DELAY", "0")))
