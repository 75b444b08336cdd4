"""The NOTIFY drain's batch path: one claim, every send in flight at once, one mark.

Same rules as one row at a time (tests/test_worker.py, tests/test_processes.py): a row
is sent once, a refused row is retried with its attempt counted, no switch leaves the
rows pending without using an attempt, a row whose claim was lost is not touched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from hotdesk.notify.outbox import (
    NotifyError,
    NotifyTarget,
    SwitchDown,
    claim_due,
    drain_once,
    mark_sent_many,
)
from hotdesk.store.models import OutboxNotify

T0 = datetime(2024, 3, 5, 9, 0)


def queue(endpoints: list[str]) -> list[int]:
    for endpoint in endpoints:
        OutboxNotify.insert(endpoint=endpoint, domain="default", event="check-sync",
                            next_attempt_at=T0, created_at=T0).execute()
    return [r.id for r in OutboxNotify.select(OutboxNotify.id).order_by(OutboxNotify.id)]


class Batch:
    """A pipelined sender: ``outcome(endpoint)`` is None (taken) or the error."""

    def __init__(self, outcome: Callable[[str], BaseException | None],
                 during: Callable[[], None] = lambda: None) -> None:
        self.outcome = outcome
        self.during = during
        self.batches: list[list[int]] = []

    def send(self, target: NotifyTarget) -> None:
        raise AssertionError("a pipelined sender gets whole batches")

    def send_many(self, targets: Sequence[NotifyTarget]) -> list[BaseException | None]:
        self.batches.append([t.outbox_id for t in targets])
        self.during()
        return [self.outcome(t.endpoint) for t in targets]


def rows() -> dict[str, tuple[str, int, bool]]:
    return {r.endpoint: (r.status, r.attempts, r.claimed_until is None)
            for r in OutboxNotify.select()}


def test_one_batch_sends_marks_and_retries_row_by_row(runtime):
    ids = queue(["a", "refused", "b", "c"])
    sender = Batch(lambda e: NotifyError("Unable to retrieve endpoint") if e == "refused"
                   else None)
    counts = drain_once(sender, runtime.config.notify, "me:1", now=T0)
    assert sender.batches == [ids]  # one batch, every row, in id order
    assert counts == {"sent": 3, "retry": 1, "failed": 0, "switch_down": 0}
    assert rows() == {"a": ("sent", 1, True), "b": ("sent", 1, True),
                      "c": ("sent", 1, True), "refused": ("pending", 1, True)}
    refused = OutboxNotify.get(OutboxNotify.endpoint == "refused")
    assert refused.last_error == "Unable to retrieve endpoint"
    assert refused.next_attempt_at > T0  # backoff
    # Nothing is due any more at T0: the next round sends nothing.
    assert drain_once(sender, runtime.config.notify, "me:1", now=T0)["sent"] == 0
    assert len(sender.batches) == 1


def test_switch_lost_mid_batch_keeps_the_rest_pending_without_an_attempt(runtime):
    queue(["a", "b", "c", "d"])
    sender = Batch(lambda e: None if e == "a" else SwitchDown("AMI connection lost"))
    counts = drain_once(sender, runtime.config.notify, "me:1", now=T0)
    assert counts == {"sent": 1, "retry": 0, "failed": 0, "switch_down": 1}
    assert rows() == {"a": ("sent", 1, True), "b": ("pending", 0, True),
                      "c": ("pending", 0, True), "d": ("pending", 0, True)}


def test_a_row_taken_over_during_the_send_is_not_marked(runtime):
    """Another drainer took "b" (its lease ran out) while the batch was in flight: this
    drainer marks only the rows still in its claim; "b" is the other one's to mark."""
    queue(["a", "b"])

    def taken_over() -> None:
        OutboxNotify.update(claimed_by="other:2", claimed_until=T0 + timedelta(minutes=5)) \
            .where(OutboxNotify.endpoint == "b").execute()

    counts = drain_once(Batch(lambda e: None, taken_over), runtime.config.notify, "me:1",
                        now=T0)
    assert counts["sent"] == 1
    b = OutboxNotify.get(OutboxNotify.endpoint == "b")
    assert (b.status, b.attempts, b.claimed_by) == ("pending", 0, "other:2")


def test_rows_claimed_by_another_drainer_are_not_sent(runtime):
    ids = queue(["a", "b", "c"])
    [first] = claim_due(1, "other:2", lease=timedelta(seconds=30), now=T0)
    assert first.id == ids[0]
    sender = Batch(lambda e: None)
    drain_once(sender, runtime.config.notify, "me:1", now=T0 + timedelta(seconds=1))
    assert sender.batches == [ids[1:]]
    assert rows()["a"] == ("pending", 0, False)


def test_mark_sent_many_writes_only_rows_still_in_the_claim(runtime):
    queue(["a", "b", "c"])
    claimed = claim_due(10, "me:1", lease=timedelta(seconds=30), now=T0)
    assert [r.claimed_by for r in claimed] == ["me:1"] * 3
    OutboxNotify.update(claimed_until=None).where(OutboxNotify.endpoint == "c").execute()
    written = mark_sent_many(claimed, "me:1", now=T0)
    assert written == {claimed[0].id, claimed[1].id}
    assert rows() == {"a": ("sent", 1, True), "b": ("sent", 1, True),
                      "c": ("pending", 0, True)}
    assert mark_sent_many(claimed, "me:1", now=T0) == set()  # never twice
