"""A NOTIFY sender for subprocess tests: appends one line per send to a file.

``[notify] sender = tests.procs.recording_sender:factory``; the file is named by
HOTDESK_TEST_SEND_LOG, each send takes HOTDESK_TEST_SEND_DELAY seconds and endpoints
starting with HOTDESK_TEST_SEND_FAIL (if set) are refused by the "switch". Each line is
written with one O_APPEND write, so lines from several processes never interleave.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from hotdesk.notify.outbox import NotifyError, NotifyTarget
from hotdesk.settings import Config


class RecordingSender:
    def __init__(self, path: str, delay: float, fail_prefix: str = "") -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.delay = delay
        self.fail_prefix = fail_prefix
        os.write(self.fd, f"ready {os.getpid()}\n".encode())

    def send(self, target: NotifyTarget) -> None:
        if self.delay:
            time.sleep(self.delay)
        if self.fail_prefix and target.endpoint.startswith(self.fail_prefix):
            os.write(self.fd, f"fail {os.getpid()} {target.outbox_id} {target.endpoint}\n"
                     .encode())
            raise NotifyError("refused by the test switch")
        os.write(self.fd, f"sent {os.getpid()} {target.outbox_id} {target.endpoint}\n".encode())


class PipelinedRecordingSender(RecordingSender):
    """The same, as a pipelined sender: a batch is in flight at once and takes the
    delay once, as a batch of AMI actions written together does."""

    def send_many(self, targets: Sequence[NotifyTarget]) -> list[BaseException | None]:
        if self.delay:
            time.sleep(self.delay)
        results: list[BaseException | None] = []
        for target in targets:
            verb = "fail" if self.fail_prefix and target.endpoint.startswith(
                self.fail_prefix) else "sent"
            os.write(self.fd, f"{verb} {os.getpid()} {target.outbox_id} {target.endpoint}\n"
                     .encode())
            results.append(NotifyError("refused by the test switch") if verb == "fail"
                           else None)
        return results


def pipelined_factory(config: Config) -> PipelinedRecordingSender:
    return PipelinedRecordingSender(os.environ["HOTDESK_TEST_SEND_LOG"],
                                    float(os.environ.get("HOTDESK_TEST_SEND_DELAY", "0")),
                                    os.environ.get("HOTDESK_TEST_SEND_FAIL", ""))


def factory(config: Config) -> RecordingSender:
    return RecordingSender(os.environ["HOTDESK_TEST_SEND_LOG"],
                           float(os.environ.get("HOTDESK_TEST_SEND_DELAY", "0")),
                           os.environ.get("HOTDESK_TEST_SEND_FAIL", ""))
