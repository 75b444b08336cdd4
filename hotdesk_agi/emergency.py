"""Asterisk side of emergency calls: AstDB entries over AMI, and watching for the calls.

Translation only; the rules are in :mod:`hotdesk.switch.emergency` (what AstDB must
hold) and :mod:`hotdesk.emergency.notices` (who is told what). The shipped
``[hotdesk-emergency]`` dialplan reads these keys with ``DB()``, locally:

    hotdesk/emergency/<endpoint>/callback|civic|text      one account
    hotdesk/emergency-default/<tenant>/callback|civic|text  a tenant's default
                                      (<tenant> = its domain, "default" for the default one)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import Executor

from hotdesk.emergency import notices
from hotdesk.notify.outbox import SwitchDown
from hotdesk.runtime import Runtime
from hotdesk.switch import emergency
from hotdesk.switch.emergency import Entry, EntryKey, StoreDown, StoreError
from hotdesk_agi.ami import AmiClient, Message, from_thread

log = logging.getLogger(__name__)

# DBDelTree of a family that is already gone: the entry is as it should be.
ALREADY_GONE = "Database entry not found"


def family(key: EntryKey) -> str:
    if key.endpoint:
        return f"hotdesk/emergency/{key.endpoint}"
    return f"hotdesk/emergency-default/{'default' if key.default_tenant else key.domain}"


def actions(key: EntryKey, entry: Entry | None) -> list[list[tuple[str, str]]]:
    """The AMI actions that make AstDB hold ``entry`` (None: nothing) for ``key``."""
    if entry is None:
        return [[("Action", "DBDelTree"), ("Family", family(key))]]
    return [[("Action", "DBPut"), ("Family", family(key)), ("Key", name), ("Val", value)]
            for name, value in (("callback", entry.callback), ("civic", entry.civic),
                                ("text", entry.text))]


def _error(key: EntryKey, headers: list[tuple[str, str]],
           reply: Message | Exception) -> Exception | None:
    """What one action's reply means for the entry: None when AstDB took it."""
    if isinstance(reply, SwitchDown):
        return StoreDown(str(reply))
    if isinstance(reply, Exception):
        return reply
    if reply.get("Response") != "Success" and reply.get("Message") != ALREADY_GONE:
        return StoreError(f"{headers[0][1]} {family(key)}: "
                          f"{reply.get('Message', 'refused by Asterisk')}")
    return None


class AmiStoreWriter:
    """:class:`hotdesk.switch.emergency.StoreWriter` over AMI, called from a DB thread."""

    def __init__(self, client: AmiClient, loop: asyncio.AbstractEventLoop,
                 timeout: float = 15.0) -> None:
        self.client = client
        self.loop = loop
        self.timeout = timeout

    async def write_async(self, key: EntryKey, entry: Entry | None) -> None:
        error = (await self.write_many_async([(key, entry)]))[0]
        if error is not None:
            raise error

    def write(self, key: EntryKey, entry: Entry | None) -> None:
        try:
            from_thread(self.write_async(key, entry), self.loop, self.timeout)
        except TimeoutError:
            raise StoreError("AMI write timed out") from None

    async def write_many_async(self, items: Sequence[tuple[EntryKey, Entry | None]]
                               ) -> list[BaseException | None]:
        """Every action of every entry in one write (pipelined, told apart by ActionID:
        Asterisk runs one connection's actions in order and answers each); the first
        failed action of an entry is that entry's error."""
        batches = [actions(key, entry) for key, entry in items]
        replies = iter(await self.client.actions([h for batch in batches for h in batch]))
        out: list[BaseException | None] = []
        for (key, _), batch in zip(items, batches, strict=True):
            errors = [_error(key, headers, next(replies)) for headers in batch]
            out.append(next((e for e in errors if e is not None), None))
        return out

    def write_many(self, items: Sequence[tuple[EntryKey, Entry | None]]
                   ) -> list[BaseException | None]:
        """A drain round's entries in one go from a DB thread (one hop, not one each)."""
        try:
            return from_thread(self.write_many_async(items), self.loop, self.timeout)
        except TimeoutError:
            return [StoreError("AMI write timed out") for _ in items]


async def drain_loop(client: AmiClient, wake: asyncio.Event, stop: asyncio.Event,
                     poll_seconds: float, executor: Executor | None = None) -> None:
    """Write marked entries whenever woken (a login, AMI back) or every poll."""
    writer = AmiStoreWriter(client, asyncio.get_running_loop())
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        try:
            # asyncio.timeout, not wait_for: wait_for wraps the wait in a new Task.
            async with asyncio.timeout(poll_seconds):
                await wake.wait()
        except TimeoutError:
            pass
        wake.clear()
        if not client.connected.is_set():
            continue
        try:
            await loop.run_in_executor(executor, emergency.drain_once, writer)
        except Exception:  # noqa: BLE001 - a database hiccup: the marks stay, next round
            log.exception("emergency entries: drain round failed; retrying")


def seen_call(msg: Message, watched: set[str]) -> notices.SeenCall | None:
    """A ``Newchannel`` of a phone dialing an emergency number (not the trunk leg,
    whose Exten is ``s``); None for every other event."""
    if msg.get("Event") != "Newchannel" or msg.get("Exten") not in watched:
        return None
    tech, _, rest = msg.get("Channel", "").partition("/")
    endpoint = rest.rsplit("-", 1)[0]
    if not tech or not endpoint:
        return None
    return notices.SeenCall(switch="asterisk", call_id=msg.get("Uniqueid", ""),
                            endpoint=endpoint, number=msg["Exten"],
                            caller_id=msg.get("CallerIDNum", ""))


def start_watch(runtime: Runtime, min_backoff: float = 0.5,
                executor: Executor | None = None) -> AmiClient:
    """A second AMI login with ``Events: call`` that reports emergency calls: kept apart
    from the NOTIFY connection so a flood of call events never delays a NOTIFY."""
    cfg = runtime.config.emergency
    watched = notices.numbers(cfg)
    client = AmiClient(runtime.config.ami, min_backoff=min_backoff, events="call",
                       label="emergency calls")
    loop = asyncio.get_running_loop()

    def on_event(msg: Message) -> None:
        call = seen_call(msg, watched)
        if call is not None:
            loop.run_in_executor(executor, notices.handle, call, cfg)

    client.on_event = on_event
    client.start()
    log.info("watching calls to %s over AMI (Events: call)", ", ".join(sorted(watched)))
    return client
