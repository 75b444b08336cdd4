"""FreeSWITCH side of emergency calls: mod_db entries over the Event Socket, and
watching for the calls. Translation only (rules: :mod:`hotdesk.switch.emergency`,
:mod:`hotdesk.emergency.notices`).

mod_db (``db insert/<realm>/<key>/<value>``) rather than mod_hash: it lives in the
switch's own database, so the entries survive a FreeSWITCH restart while hotdesk is
down. The shipped dialplan (``dialplan/freeswitch/hotdesk.xml``) reads them with
``${db(select/<realm>/<key>)}``:

    hotdesk_emergency_callback / <user>@<domain>   callback number
    hotdesk_emergency_location / <user>@<domain>   the location in one line
    (key ``@<domain>``: the tenant's default)
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from esl_handlers.inbound import EslError, EslUnavailable, InboundConnection
from hotdesk.emergency import notices
from hotdesk.runtime import Runtime
from hotdesk.store.db import close_quietly
from hotdesk.store.models import process_database
from hotdesk.switch import emergency
from hotdesk.switch.emergency import Entry, EntryKey, StoreDown, StoreError

log = logging.getLogger(__name__)

REALMS = {"callback": "hotdesk_emergency_callback", "text": "hotdesk_emergency_location"}


def commands(key: EntryKey, entry: Entry | None) -> list[str]:
    """The ``api`` commands that make mod_db hold ``entry`` (None: nothing) for ``key``.
    An empty field is deleted: ``db insert`` needs a value."""
    name = f"{key.endpoint}@{key.domain}"
    out = []
    for field, realm in REALMS.items():
        value = getattr(entry, field) if entry else ""
        out.append(f"db insert/{realm}/{name}/{value}" if value else f"db delete/{realm}/{name}")
    return out


class EslStoreWriter:
    """:class:`hotdesk.switch.emergency.StoreWriter` over the inbound Event Socket."""

    def __init__(self, inbound: InboundConnection) -> None:
        self.inbound = inbound

    def write(self, key: EntryKey, entry: Entry | None) -> None:
        for cmd in commands(key, entry):
            try:
                reply = self.inbound.api(cmd)
            except EslUnavailable as exc:
                raise StoreDown(str(exc)) from None
            except EslError as exc:
                raise StoreError(f"{cmd.split('/', 1)[0]}: {exc}") from None
            if not reply.startswith("+OK"):
                raise StoreError(f"{cmd.split('/', 1)[0]}: {reply.strip()[:200]}")


class DrainLoop:
    """Writes marked entries in a thread of its own, woken when the link comes back."""

    def __init__(self, inbound: InboundConnection, poll_seconds: float) -> None:
        self.writer = EslStoreWriter(inbound)
        self.inbound = inbound
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="esl-emergency", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.inbound.connected:
                try:
                    emergency.drain_once(self.writer)
                except Exception:  # noqa: BLE001 - a database hiccup: marks stay, next round
                    log.exception("emergency entries: drain round failed; retrying")
                    close_quietly(process_database)
            self._wake.wait(self.poll_seconds)
            self._wake.clear()


def seen_call(headers: dict[str, str], watched: set[str]) -> notices.SeenCall | None:
    """The phone's leg (inbound) of a call to an emergency number, from CHANNEL_CREATE."""
    if (headers.get("Event-Name") != "CHANNEL_CREATE"
            or headers.get("Call-Direction") != "inbound"
            or headers.get("Caller-Destination-Number") not in watched):
        return None
    endpoint = headers.get("variable_user_name") or headers.get("Caller-Username", "")
    if not endpoint:
        return None
    return notices.SeenCall(switch="freeswitch", call_id=headers.get("Unique-ID", ""),
                            endpoint=endpoint, number=headers["Caller-Destination-Number"],
                            domain=headers.get("variable_domain_name", ""),
                            caller_id=headers.get("Caller-Caller-ID-Number", ""))


class Watch:
    """A second inbound connection subscribed to CHANNEL_CREATE; emergency calls are
    handed to the core on a small pool, never on the reading thread."""

    def __init__(self, runtime: Runtime, backoff_start: float = 0.5) -> None:
        cfg = runtime.config
        self.config = cfg.emergency
        self.watched = notices.numbers(cfg.emergency)
        self.pool = ThreadPoolExecutor(2, thread_name_prefix="emergency-notice")
        self.inbound = InboundConnection(cfg.esl.host, cfg.esl.port, cfg.esl.password,
                                         reconnect_max=cfg.esl.reconnect_max_seconds,
                                         backoff_start=backoff_start,
                                         subscribe="CHANNEL_CREATE", on_event=self._on_event,
                                         label="emergency calls")

    def _on_event(self, headers: dict[str, str]) -> None:
        call = seen_call(headers, self.watched)
        if call is not None:
            self.pool.submit(notices.handle, call, self.config)

    def start(self) -> None:
        self.inbound.start()
        log.info("watching calls to %s over the Event Socket (CHANNEL_CREATE)",
                 ", ".join(sorted(self.watched)))

    def stop(self) -> None:
        self.inbound.stop()
        self.pool.shutdown(wait=True)
