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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from esl_handlers.inbound import EslUnavailable, InboundConnection
from esl_handlers.wire import Message, command
from hotdesk.emergency import notices
from hotdesk.ops.supervise import WakeableThread
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
    """:class:`hotdesk.switch.emergency.StoreWriter` over the inbound Event Socket, with
    ``write_many``: a drain round's ``db`` commands are written in one go and the
    replies read in order (capture esl-pipelined-batch)."""

    def __init__(self, inbound: InboundConnection) -> None:
        self.inbound = inbound

    def write(self, key: EntryKey, entry: Entry | None) -> None:
        [error] = self.write_many([(key, entry)])
        if error is not None:
            raise error

    def write_many(self, items: Sequence[tuple[EntryKey, Entry | None]]
                   ) -> list[BaseException | None]:
        """Per entry None (written), StoreError (a command refused) or StoreDown (no
        reply: no link, or it dropped before this entry's replies)."""
        planned = [commands(key, entry) for key, entry in items]
        replies = iter(self.inbound.request_many(
            [command(f"api {cmd}") for cmds in planned for cmd in cmds]))
        return [_first_failure([(cmd, next(replies)) for cmd in cmds]) for cmds in planned]


def _first_failure(done: list[tuple[str, Message | EslUnavailable]]) -> BaseException | None:
    """What went wrong with an entry, from its commands' replies (in order)."""
    for cmd, reply in done:
        if isinstance(reply, EslUnavailable):
            return StoreDown(str(reply))
        body = reply.body.decode("utf-8", "replace")
        if not body.startswith("+OK"):  # "-ERR …", or mod_db's "!err!"
            return StoreError(f"{cmd.split('/', 1)[0]}: {body.strip()[:200]}")
    return None


class DrainLoop(WakeableThread):
    """Writes marked entries in a thread of its own, woken when the link comes back."""

    name = "esl-emergency"
    join_timeout = 5.0

    def __init__(self, inbound: InboundConnection, poll_seconds: float) -> None:
        super().__init__()
        self.writer = EslStoreWriter(inbound)
        self.inbound = inbound
        self.poll_seconds = poll_seconds

    def run(self) -> None:
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
