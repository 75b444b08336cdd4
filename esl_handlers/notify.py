"""check-sync NOTIFYs through mod_sofia's ``sendevent NOTIFY``, and the outbox drain loop.

``sendevent`` addresses one phone: either the registration of user@host on the profile,
or exactly one contact URI. It is used instead of ``sofia profile <p> check_sync``:
without user@domain that command drops every registration of the profile, and its Event
header depends on the phone's User-Agent (some phones reboot on it).
``+OK <uuid>`` means FreeSWITCH accepted the event, not that the phone got it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from esl_handlers.inbound import EslUnavailable, InboundConnection
from esl_handlers.wire import Message, command
from hotdesk.notify.drain import drain_stall_seconds, run_drain
from hotdesk.notify.outbox import NotifyError, NotifySender, NotifyTarget, SwitchDown
from hotdesk.ops.supervise import LoopMonitor, SupervisedThread
from hotdesk.settings import Config

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/simple-message-summary"


def notify_headers(target: NotifyTarget, profile: str) -> dict[str, str]:
    """The sendevent headers, in the order of the reference capture."""
    if target.contact_uri:
        aor = f"sip:{target.endpoint}@{target.domain}"
        return {"profile": profile, "contact-uri": target.contact_uri, "to-uri": aor,
                "from-uri": aor, "event-string": target.event, "content-type": CONTENT_TYPE}
    return {"profile": profile, "user": target.endpoint, "host": target.domain,
            "content-type": CONTENT_TYPE, "event-string": target.event}


class EslNotifySender:
    """outbox.NotifySender over the inbound Event Socket; a
    :class:`~hotdesk.notify.outbox.PipelinedSender`: a drain's batch is written in one
    go and the replies read in order (capture esl-pipelined-batch)."""

    def __init__(self, inbound: InboundConnection, profile: str) -> None:
        self.inbound = inbound
        self.profile = profile

    def send(self, target: NotifyTarget) -> None:
        [error] = self.send_many([target])
        if error is not None:
            raise error

    def send_many(self, targets: Sequence[NotifyTarget]) -> list[BaseException | None]:
        """One ``sendevent NOTIFY`` per target, all in flight at once; per target None
        (FreeSWITCH took it), NotifyError (refused) or SwitchDown (no reply: no link,
        or it dropped before this target's reply; the drain keeps those queued)."""
        if not self.inbound.connected:
            return [SwitchDown("no Event Socket connection to FreeSWITCH") for _ in targets]
        replies = self.inbound.request_many(
            [command("sendevent NOTIFY", notify_headers(t, self.profile)) for t in targets])
        return [_outcome(reply) for reply in replies]


def _outcome(reply: Message | EslUnavailable) -> BaseException | None:
    if isinstance(reply, EslUnavailable):
        return SwitchDown(str(reply))
    if not reply.reply_text.startswith("+OK"):
        return NotifyError(f"FreeSWITCH refused sendevent NOTIFY: {reply.reply_text}")
    return None


class DrainLoop(SupervisedThread):
    """The core's outbox drain (:func:`hotdesk.notify.drain.run_drain`) in a thread of its
    own, supervised: restarted after any error, with its own ``esl-drain`` heartbeat."""

    name = "esl-outbox"
    join_timeout = 5.0

    def __init__(self, sender: NotifySender, config: Config,
                 owner: str | None = None) -> None:
        super().__init__()
        self.sender = sender
        self.config = config
        self.owner = owner
        self.monitor = LoopMonitor("esl-drain", node=config.metrics.node,
                                   stall_seconds=drain_stall_seconds(config))

    def _loop(self) -> None:
        run_drain(self.sender, self.config, self._stop, owner=self.owner, wake=self._wake,
                  on_round=self.monitor.beat)
