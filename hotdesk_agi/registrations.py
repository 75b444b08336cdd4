"""Asterisk's registrations, watched over an AMI connection of their own.

The NOTIFY connection logs in with ``Events: off`` and stays that way; this one logs
in with ``Events: system,security`` (only those classes: ``ContactStatus`` is a
system event, a refused REGISTER a security event), lists every contact with
``PJSIPShowContacts`` at each (re)connect and every ``[registrations]
resync_seconds``, and hands translated events to the core's
:class:`~hotdesk.switch.registration_writer.RegistrationWriter`. Reconnect and its
backoff are :class:`hotdesk_agi.ami.AmiClient`'s.

Asterisk 22 (res_pjsip): ``ContactStatus`` is ``NonQualified`` when a contact is
created, ``Reachable``/``Unreachable``/``Unknown`` after qualify, re-sent on every
refresh, and ``Removed`` on unregister or expiry; it carries ``URI``, ``AOR``,
``EndpointName`` but no expiry (the listing's ``ExpirationTime`` supplies it). A
wrong password is ``ChallengeResponseFailed``, an unknown user ``InvalidAccountID``,
an address refused by an ACL ``FailedACL``; accepted credentials ``SuccessfulAuth``
(also for a refresh, which raises no ``ContactStatus``); each with ``AccountID`` and
``RemoteAddress: IPV4/UDP/<ip>/<port>``; ``ChallengeResponseFailed`` also has a header
named ``Response`` (the digest), so it must never be taken for an action's response.
``PJSIPShowContacts`` with no contact at all is ``Response: Error`` / ``Message: No
Contacts found``.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from hotdesk.notify.outbox import NotifyError
from hotdesk.settings import Config
from hotdesk.store.models import utcnow
from hotdesk.switch import registrations as regs
from hotdesk.switch.registration_writer import RegistrationWriter, reporting_writer
from hotdesk_agi.ami import AmiClient, AmiError, Message

log = logging.getLogger(__name__)

EVENT_CLASSES = "system,security"
NO_CONTACTS = "No Contacts found"
GONE = {"Removed"}
REFUSED = {
    "ChallengeResponseFailed": "wrong password",
    "InvalidPassword": "wrong password",
    "InvalidAccountID": "no such account on the switch",
    "FailedACL": "address refused by an ACL",
}


def security_address(value: str) -> str:
    """``IPV4/UDP/127.0.0.1/5071`` -> ``127.0.0.1:5071``; IPv6 gets brackets."""
    parts = value.split("/")
    if len(parts) < 4:
        return value
    ip, port = "/".join(parts[2:-1]), parts[-1]
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def translate(msg: Message, now: datetime) -> regs.Change | None:
    """One AMI event -> a core change, or None for everything else."""
    event = msg.get("Event", "")
    if event == "ContactStatus":
        account = msg.get("AOR") or msg.get("EndpointName", "")
        uri = msg.get("URI", "")
        if not account or not uri:
            return None
        if msg.get("ContactStatus") in GONE:
            return regs.ContactGone(account, uri, now)
        return regs.ContactSeen(account, uri, regs.host_port(uri), now)
    if event == "SuccessfulAuth" and msg.get("Service") == "PJSIP":
        address = security_address(msg.get("RemoteAddress", ""))
        return regs.AuthAccepted(msg.get("AccountID", ""), address, now) if address else None
    if event in REFUSED and msg.get("Service", "PJSIP") in ("PJSIP", "SIP"):
        address = security_address(msg.get("RemoteAddress", ""))
        if not address:
            return None
        return regs.AuthRefused(msg.get("AccountID", ""), address, REFUSED[event], now)
    return None


def contact_from_list(item: Message, now: datetime) -> regs.ContactSeen | None:
    """One ``ContactList`` event of ``PJSIPShowContacts``."""
    if item.get("Event") != "ContactList":
        return None
    uri = item.get("Uri", "")
    aor = item.get("ObjectName", "").split(";@", 1)[0] or item.get("Endpoint", "")
    if not uri or not aor:
        return None
    expires = None
    raw = item.get("ExpirationTime", "")
    if raw.isdigit() and int(raw) > 0:
        expires = datetime.fromtimestamp(int(raw), UTC).replace(tzinfo=None)
    return regs.ContactSeen(aor, uri, regs.host_port(uri), now, expires_at=expires,
                            user_agent=item.get("UserAgent", ""))


class AmiRegistrationWatcher:
    """The AMI side: connection, listing at connect and periodically, events to the writer."""

    def __init__(self, config: Config, writer: RegistrationWriter,
                 min_backoff: float = 0.5) -> None:
        self.config = config
        self.writer = writer
        self.client = AmiClient(config.ami, min_backoff=min_backoff, events=EVENT_CLASSES,
                                action_timeout=60.0, label="registrations")
        self.client.on_event = self._on_event
        self.client.on_state = self._on_state
        self._connected_again = asyncio.Event()
        self.client.on_connected = self._connected_again.set
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.writer.start()
        self.client.start()
        self._task = asyncio.create_task(self._listings(), name="ami-registrations")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.client.close()
        await asyncio.to_thread(self.writer.stop)

    def _on_event(self, msg: Message) -> None:
        try:
            change = translate(msg, utcnow())
        except Exception:  # noqa: BLE001 - one odd event must not drop the connection
            log.exception("AMI registrations: event %s not understood", msg.get("Event"))
            return
        if change is not None:
            self.writer.put(change)

    async def list_contacts(self) -> int:
        """Ask for every contact; the writer replaces the table with the answer."""
        started = utcnow()
        try:
            items = await self.client.list_action([("Action", "PJSIPShowContacts")])
        except AmiError as exc:
            # Asterisk 22 answers an empty listing with an Error, not an empty list.
            if str(exc) != NO_CONTACTS:
                raise
            items = []
        contacts = [c for c in (contact_from_list(i, started) for i in items) if c]
        self.writer.listing(contacts, started)
        return len(contacts)

    async def _listings(self) -> None:
        """List at every (re)connect, then every resync_seconds while connected."""
        while True:
            try:
                await asyncio.wait_for(self._connected_again.wait(),
                                       self.config.registrations.resync_seconds)
            except TimeoutError:
                pass
            self._connected_again.clear()
            if not self.client.connected.is_set():
                continue
            try:
                n = await self.list_contacts()
                log.info("AMI registrations: %d contact(s) listed", n)
            except AmiError as exc:
                log.error("AMI refused PJSIPShowContacts (%s): registrations are not "
                          "watched; the manager.conf user needs write = system (the "
                          "listing) and read = system,security (the events)", exc)
                self.writer.on_listing(False, f"PJSIPShowContacts refused: {exc}")
            except NotifyError as exc:  # SwitchDown or a timeout: the connection recovers
                log.warning("AMI registrations: listing failed (%s); retrying", exc)
                self._connected_again.set()
                await asyncio.sleep(self.client.min_backoff)
            except Exception:  # noqa: BLE001 - supervised: a bug must not end the watcher
                log.exception("AMI registrations: listing failed; retrying")
                self._connected_again.set()
                await asyncio.sleep(max(self.client.min_backoff, 1.0))

    def _on_state(self, up: bool, detail: str) -> None:
        if not up:
            self.writer.on_listing(False, detail)


def start_watcher(config: Config, min_backoff: float = 0.5) -> AmiRegistrationWatcher | None:
    """The watcher of ``hotdesk agi``; None when ``[registrations] watch`` is off."""
    writer = reporting_writer("asterisk", config, f"AMI {config.ami.host}:{config.ami.port}")
    if writer is None:
        return None
    watcher = AmiRegistrationWatcher(config, writer, min_backoff)
    watcher.start()
    return watcher
