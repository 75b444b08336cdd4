"""FreeSWITCH's registrations, watched over an inbound Event Socket connection of their own.

The NOTIFY link subscribes to nothing and stays that way; this one subscribes to
``CUSTOM sofia::register sofia::unregister sofia::expire sofia::register_failure``,
lists the profile's registrations (``api sofia status profile <p> reg``) at each
(re)connect and every ``[registrations] resync_seconds``, and hands translated
events to the core's :class:`~hotdesk.switch.registration_writer.RegistrationWriter`.
Reconnect and its backoff are :class:`esl_handlers.inbound.InboundConnection`'s.

What mod_sofia puts in them (sofia_reg.c): ``sofia::register`` and
``sofia::unregister`` carry the registered user in ``from-user``, ``contact``
(``"" <sip:8001@127.0.0.1:5072;transport=UDP>``), ``network-ip``/``network-port`` and
``expires`` (seconds); ``sofia::expire`` carries ``user`` and ``contact``;
``sofia::register_failure`` (a REGISTER answered 403: a wrong password and an unknown
user look the same) carries ``to-user``, ``network-ip``, ``network-port`` and
``registration-type``. ``sofia::expire`` comes 60-90 s after the registration ran out
(sip-expires-late-margin, checked every 30 s); its ``expires`` is an absolute time.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from esl_handlers.inbound import EslError, EslUnavailable, InboundConnection
from hotdesk.settings import Config
from hotdesk.store.models import utcnow
from hotdesk.switch import registrations as regs
from hotdesk.switch.registration_writer import RegistrationWriter, reporting_writer

log = logging.getLogger(__name__)

SUBSCRIBE = "CUSTOM sofia::register sofia::unregister sofia::expire sofia::register_failure"


def contact_uri(contact: str) -> str:
    """``"" <sip:8001@10.0.0.7:5072;transport=UDP>`` -> the URI inside the brackets."""
    if "<" in contact:
        return contact.split("<", 1)[1].split(">", 1)[0]
    return contact.strip()


def _address(headers: dict[str, str]) -> str:
    ip, port = headers.get("network-ip", ""), headers.get("network-port", "")
    if not ip:
        return ""
    host = f"[{ip}]" if ":" in ip else ip
    return f"{host}:{port}" if port else host


def translate(headers: dict[str, str], now: datetime, profile: str = "") -> regs.Change | None:
    """One decoded event -> a core change, or None for everything else."""
    subclass = headers.get("Event-Subclass", "")
    if profile and headers.get("profile-name", profile) != profile:
        return None
    if subclass == "sofia::register":
        uri = contact_uri(headers.get("contact", ""))
        account = headers.get("from-user", "")
        if not uri or not account:
            return None
        expires = headers.get("expires", "")
        return regs.ContactSeen(
            account, uri, _address(headers) or regs.host_port(uri), now,
            expires_at=now + timedelta(seconds=int(expires)) if expires.isdigit() else None,
            user_agent=headers.get("user-agent", ""), domain=headers.get("from-host", ""))
    if subclass in ("sofia::unregister", "sofia::expire"):
        uri = contact_uri(headers.get("contact", ""))
        account = headers.get("from-user") or headers.get("user", "")
        return regs.ContactGone(account, uri, now) if uri and account else None
    if subclass == "sofia::register_failure":
        if headers.get("registration-type", "REGISTER") != "REGISTER":
            return None
        address = _address(headers)
        if not address:
            return None
        # The event does not say which: both are answered 403 and look the same.
        return regs.AuthRefused(headers.get("to-user", ""), address,
                                "wrong password or no such user (403 Forbidden)", now)
    return None


def parse_reg_listing(text: str, now: datetime) -> list[regs.ContactSeen]:
    """The text of ``sofia status profile <p> reg``: one block of ``Name:<TAB>value`` per
    registration, blank-line separated."""
    contacts: list[regs.ContactSeen] = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            name, sep, value = line.partition(":")
            if sep and "\t" in value:
                fields[name.strip()] = value.split("\t", 1)[1].strip()
        user, uri = fields.get("User", ""), contact_uri(fields.get("Contact", ""))
        if not user or not uri:
            continue
        account, _, domain = user.partition("@")
        expires = None
        status = fields.get("Status", "")
        if "EXPSECS(" in status:
            secs = status.split("EXPSECS(", 1)[1].split(")", 1)[0]
            if secs.lstrip("-").isdigit():
                expires = now + timedelta(seconds=int(secs))
        ip, port = fields.get("IP", ""), fields.get("Port", "")
        address = _address({"network-ip": ip, "network-port": port}) or regs.host_port(uri)
        contacts.append(regs.ContactSeen(account, uri, address, now, expires_at=expires,
                                         user_agent=fields.get("Agent", ""), domain=domain))
    return contacts


class EslRegistrationWatcher:
    """The Event Socket side: connection, listing at connect and periodically, events."""

    def __init__(self, config: Config, writer: RegistrationWriter,
                 backoff_start: float = 0.5) -> None:
        cfg = config.esl
        self.config = config
        self.writer = writer
        self.profile = cfg.profile
        self.conn = InboundConnection(cfg.host, cfg.port, cfg.password,
                                      reconnect_max=cfg.reconnect_max_seconds,
                                      backoff_start=backoff_start, on_state=self._on_state,
                                      subscribe=SUBSCRIBE, on_event=self._on_event,
                                      reply_timeout=60.0, label="registrations")
        self._connected_again = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.writer.start()
        self.conn.start()
        self._thread = threading.Thread(target=self._listings, name="esl-registrations",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._connected_again.set()
        self.conn.stop()
        if self._thread is not None:
            self._thread.join(5.0)
        self.writer.stop()

    def _on_state(self, up: bool, detail: str) -> None:
        if up:
            self._connected_again.set()  # never list here: this is the reader's thread
        else:
            self.writer.on_listing(False, detail or "Event Socket down")

    def _on_event(self, headers: dict[str, str]) -> None:
        change = translate(headers, utcnow(), self.profile)
        if change is not None:
            self.writer.put(change)

    def list_registrations(self) -> int:
        started = utcnow()
        text = self.conn.api(f"sofia status profile {self.profile} reg")
        if "Registrations:" not in text:  # e.g. "Invalid Profile [x]"
            raise EslError(text.strip().splitlines()[0] if text.strip() else "empty reply")
        contacts = parse_reg_listing(text, started)
        self.writer.listing(contacts, started)
        return len(contacts)

    def _listings(self) -> None:
        while not self._stop.is_set():
            self._connected_again.wait(self.config.registrations.resync_seconds)
            self._connected_again.clear()
            if self._stop.is_set():
                return
            if not self.conn.connected:
                continue
            try:
                n = self.list_registrations()
                log.info("Event Socket registrations: %d contact(s) listed on profile %s", n,
                         self.profile)
            except EslError as exc:
                log.error("FreeSWITCH refused 'sofia status profile %s reg' (%s): "
                          "registrations are not watched; check [esl] profile",
                          self.profile, exc)
                self.writer.on_listing(False, f"listing refused: {exc}")
            except EslUnavailable as exc:
                log.warning("Event Socket registrations: listing failed (%s); retrying", exc)
                self._stop.wait(self.conn.backoff_start)
                self._connected_again.set()
            except Exception:  # noqa: BLE001 - supervised: a bug must not end the watcher
                log.exception("Event Socket registrations: listing failed; retrying")
                self._stop.wait(max(self.conn.backoff_start, 1.0))
                self._connected_again.set()


def start_watcher(config: Config, backoff_start: float = 0.5) -> EslRegistrationWatcher | None:
    """The watcher of ``hotdesk esl``; None when ``[registrations] watch`` is off."""
    writer = reporting_writer("freeswitch", config, f"ESL {config.esl.host}:{config.esl.port}")
    if writer is None:
        return None
    watcher = EslRegistrationWatcher(config, writer, backoff_start)
    watcher.start()
    return watcher
