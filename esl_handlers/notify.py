"""check-sync NOTIFYs through mod_sofia's ``sendevent NOTIFY``, and the outbox drain loop.

``sendevent`` addresses one phone: either the registration of user@host on the profile,
or exactly one contact URI. It is used instead of ``sofia profile <p> check_sync``:
without user@domain that command drops every registration of the profile, and its Event
header depends on the phone's User-Agent (some phones reboot on it).
``+OK <uuid>`` means FreeSWITCH accepted the event, not that the phone got it.
"""

from __future__ import annotations

import logging
import threading

from peewee import Database

from esl_handlers.inbound import EslUnavailable, InboundConnection
from hotdesk import outbox
from hotdesk.config import NotifyConfig
from hotdesk.outbox import NotifyError, NotifyTarget, SwitchDown

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
    """outbox.NotifySender over the inbound Event Socket."""

    def __init__(self, inbound: InboundConnection, profile: str) -> None:
        self.inbound = inbound
        self.profile = profile

    def send(self, target: NotifyTarget) -> None:
        if not self.inbound.connected:
            raise SwitchDown("no Event Socket connection to FreeSWITCH")
        try:
            reply = self.inbound.sendevent("NOTIFY", notify_headers(target, self.profile))
        except EslUnavailable as exc:
            raise SwitchDown(str(exc)) from None
        if not reply.startswith("+OK"):
            raise NotifyError(f"FreeSWITCH refused sendevent NOTIFY: {reply}")


class DrainLoop:
    """Sends due outbox rows every ``poll_seconds`` until stopped."""

    def __init__(self, db: Database, sender: EslNotifySender, policy: NotifyConfig,
                 owner: str | None = None) -> None:
        self.db = db
        self.sender = sender
        self.policy = policy
        self.owner = owner or outbox.worker_id()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="esl-outbox", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                outbox.drain_once(self.sender, self.policy, self.owner)
                if failing:
                    log.info("outbox drain works again")
                failing = False
            except Exception as exc:  # noqa: BLE001 - a locked/absent DB must not end the loop
                if not failing:
                    log.warning("outbox drain failed, retrying: %s", exc)
                failing = True
            self._wake.wait(self.policy.poll_seconds)
            self._wake.clear()
        try:
            self.db.close()
        except Exception:  # noqa: BLE001
            pass
