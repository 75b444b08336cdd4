"""The NOTIFY drain's batch path over the Event Socket: the batch's ``sendevent NOTIFY``
written together on the inbound connection, the replies read in order, each row's
outcome the same as on AMI (tests/test_outbox_pipelined.py) and one row at a time.

Against the fake FreeSWITCH, which answers a pipelined batch byte for byte like the
real one (tests/test_fake_freeswitch.py, capture esl-pipelined-batch)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from esl_handlers.inbound import InboundConnection
from esl_handlers.notify import EslNotifySender
from hotdesk.notify.drain import drain_round
from hotdesk.notify.outbox import NotifyError, NotifyTarget, SwitchDown, claim_due, drain_once
from hotdesk.store.models import OutboxNotify
from tests.fakes.freeswitch import FakeInboundServer, reply
from tests.test_outbox_pipelined import T0, queue, rows


@pytest.fixture
def fake():
    server = FakeInboundServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def inbound(fake):
    connection = InboundConnection(*fake.address, "ClueCon", backoff_start=0.05,
                                   reply_timeout=2.0)
    connection.start()
    assert connection.wait_connected(5)
    yield connection
    connection.stop()


def notified(fake: FakeInboundServer) -> list[str]:
    return [dict(headers)["user"] for headers in fake.notifies]


def refusing(fake: FakeInboundServer, user: str) -> None:
    """The fake refuses the sendevent for ``user`` with mod_event_socket's generic error
    reply. (A real FreeSWITCH answers +OK to every sendevent, mod_event_socket.c; the
    sender must still keep a refusal to its row.)"""
    original = fake._command

    def command(conn, cmd, lines, subs):  # type: ignore[no-untyped-def]
        if cmd.startswith("sendevent ") and f"user: {user}" in lines:
            conn.sendall(reply("-ERR command not found"))
            return True
        return original(conn, cmd, lines, subs)

    fake._command = command  # type: ignore[method-assign]


def test_one_batch_sends_marks_and_retries_row_by_row(runtime, fake, inbound):
    ids = queue(["a", "refused", "b", "c"])
    refusing(fake, "refused")
    counts = drain_once(EslNotifySender(inbound, "internal"), runtime.config.notify, "me:1",
                        now=T0)
    assert counts == {"sent": 3, "retry": 1, "failed": 0, "switch_down": 0}
    assert rows() == {"a": ("sent", 1, True), "b": ("sent", 1, True),
                      "c": ("sent", 1, True), "refused": ("pending", 1, True)}
    refused = OutboxNotify.get(OutboxNotify.endpoint == "refused")
    assert refused.last_error == "FreeSWITCH refused sendevent NOTIFY: -ERR command not found"
    assert refused.next_attempt_at > T0  # backoff
    assert notified(fake) == ["a", "b", "c"] and len(fake.commands) == len(ids)


def test_the_batch_is_written_at_once(runtime, fake, inbound):
    """A switch that takes the commands but never answers: every command of the batch
    reached it (nothing waited for a reply before writing the next), and without replies
    every row stays queued without an attempt, as when the link is lost."""
    queue(["a", "b", "c"])
    fake.silent = True
    inbound.reply_timeout = 0.3
    counts = drain_once(EslNotifySender(inbound, "internal"), runtime.config.notify, "me:1",
                        now=T0)
    assert fake.commands == ["sendevent NOTIFY"] * 3
    assert counts["switch_down"] == 1 and counts["sent"] == 0
    assert rows() == {e: ("pending", 0, True) for e in "abc"}


def test_switch_lost_mid_batch_keeps_the_rest_pending_without_an_attempt(runtime, fake,
                                                                         inbound):
    queue(["a", "b", "c", "d"])
    fake.drop_at = 2  # FreeSWITCH goes away when the second command arrives
    counts = drain_once(EslNotifySender(inbound, "internal"), runtime.config.notify, "me:1",
                        now=T0)
    assert counts == {"sent": 1, "retry": 0, "failed": 0, "switch_down": 1}
    assert rows() == {"a": ("sent", 1, True), "b": ("pending", 0, True),
                      "c": ("pending", 0, True), "d": ("pending", 0, True)}
    assert notified(fake) == ["a"]


def test_no_link_is_switch_down_for_every_target():
    sender = EslNotifySender(InboundConnection("127.0.0.1", 1, "ClueCon"), "internal")
    results = sender.send_many([NotifyTarget(1, "8001", "d", "", "check-sync"),
                                NotifyTarget(2, "8002", "d", "", "check-sync")])
    assert [type(r) for r in results] == [SwitchDown, SwitchDown]
    with pytest.raises(SwitchDown):
        sender.send(NotifyTarget(1, "8001", "d", "", "check-sync"))


def test_a_row_taken_over_during_the_send_is_not_marked(runtime, fake, inbound):
    """Another drainer took "b" (its lease ran out) while the batch was in flight."""
    queue(["a", "b"])

    class TakenOver(EslNotifySender):
        def send_many(self, targets: Sequence[NotifyTarget]) -> list[BaseException | None]:
            results = super().send_many(targets)
            OutboxNotify.update(claimed_by="other:2",
                                claimed_until=T0 + timedelta(minutes=5)) \
                .where(OutboxNotify.endpoint == "b").execute()
            return results

    counts = drain_once(TakenOver(inbound, "internal"), runtime.config.notify, "me:1", now=T0)
    assert counts["sent"] == 1
    b = OutboxNotify.get(OutboxNotify.endpoint == "b")
    assert (b.status, b.attempts, b.claimed_by) == ("pending", 0, "other:2")


def test_rows_claimed_by_another_drainer_are_not_sent(runtime, fake, inbound):
    ids = queue(["a", "b", "c"])
    [first] = claim_due(1, "other:2", lease=timedelta(seconds=30), now=T0)
    assert first.id == ids[0]
    drain_once(EslNotifySender(inbound, "internal"), runtime.config.notify, "me:1",
               now=T0 + timedelta(seconds=1))
    assert notified(fake) == ["b", "c"]
    assert rows()["a"] == ("pending", 0, False)


def test_the_drain_round_keeps_the_batch_path(runtime, fake, inbound):
    """drain_round wraps the sender (metrics, render_dir): the batch still goes out in
    one write; a single send raises what its row's entry would be."""
    queue(["a", "b"])
    fake.silent = True
    inbound.reply_timeout = 0.3
    counts = drain_round(EslNotifySender(inbound, "internal"), runtime.config, "me:1")
    assert fake.commands == ["sendevent NOTIFY"] * 2 and counts["switch_down"] == 1


def test_a_single_send_raises_the_refusal(fake, inbound):
    refusing(fake, "8001")
    with pytest.raises(NotifyError, match="-ERR command not found"):
        EslNotifySender(inbound, "internal").send(NotifyTarget(1, "8001", "d", "",
                                                               "check-sync"))
