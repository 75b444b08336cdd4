"""A small asyncio AMI client that stays connected, and the NOTIFY sender built on it.

Not panoramisk's ``Manager``: it retries every ``reconnect_timeout`` seconds forever
with no backoff, logs a warning on every failed retry, silently keeps running
unauthenticated after a refused Login, and re-sends queued actions after a reconnect
(for NOTIFYs the durable outbox already owns retries, so that could double-send).
Here: exponential backoff up to ``[ami] reconnect_max_seconds``, one log line per
state change, and an action sent while disconnected fails at once (SwitchDown), so
the outbox row stays pending without losing an attempt.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from hotdesk.notify.outbox import NotifyError, NotifyTarget, SwitchDown
from hotdesk.ops.supervise import describe
from hotdesk.settings import AmiConfig

log = logging.getLogger(__name__)

Message = dict[str, str]
T = TypeVar("T")
MAX_MESSAGE = 64 * 1024


def encode_action(headers: list[tuple[str, str]]) -> bytes:
    """``Key: value`` lines, CR LF, a blank line ends the action; no line breaks in values."""
    lines = [f"{k}: {v.replace(chr(13), ' ').replace(chr(10), ' ')}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def parse_message(block: bytes) -> Message:
    msg: Message = {}
    for line in block.decode("utf-8", "replace").split("\r\n"):
        key, sep, value = line.partition(":")
        if sep and key not in msg:
            msg[key.strip()] = value.strip()
    return msg


class AmiError(Exception):
    pass


class AmiClient:
    """One logged-in AMI connection, re-established in the background."""

    def __init__(self, config: AmiConfig, action_timeout: float = 10.0,
                 min_backoff: float = 0.5, events: str = "off", label: str = "") -> None:
        self.config = config
        # Names this connection in the log when a process holds more than one.
        self.label = label
        # Login's ``Events:``: "off" for the NOTIFY sender, event classes for a watcher.
        self.events = events
        # Told every event that is not an item of a list action of ours.
        self.on_event: Callable[[Message], None] = lambda msg: None
        self._lists: dict[str, list[Message]] = {}
        self.action_timeout = action_timeout
        self.min_backoff = min_backoff
        self.connected = asyncio.Event()
        self.state = "starting"
        self.on_connected: Callable[[], None] = lambda: None
        # Told (up, detail) on every state change: the heartbeat of this connection.
        self.on_state: Callable[[bool, str], None] = lambda up, detail: None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[str, asyncio.Future[Message]] = {}
        self._ids = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def address(self) -> str:
        where = f"{self.config.host}:{self.config.port}"
        return f"{where} ({self.label})" if self.label else where

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ami-client")

    async def close(self) -> None:
        self._closing = True
        if self._writer is not None:
            self._writer.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _set_state(self, state: str, message: str, level: int = logging.INFO,
                   detail: str = "") -> None:
        if state != self.state:
            self.state = state
            log.log(level, message)
            self.on_state(state == "connected",
                          detail or message.removeprefix(f"AMI {self.address} "))

    async def _run(self) -> None:
        delay = self.min_backoff
        while not self._closing:
            try:
                await self._session()
            except AmiError as exc:
                self._set_state("refused", f"AMI {self.address} refused login: {exc}; retrying",
                                logging.ERROR)
            except (TimeoutError, OSError, asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError, ValueError) as exc:
                if self.state == "connected":
                    message = f"AMI {self.address} connection lost ({exc or 'closed'}), retrying"
                else:
                    message = f"AMI {self.address} unreachable, retrying"
                self._set_state("down", message, logging.WARNING,
                                f"{type(exc).__name__}: {exc}" if str(exc) else
                                type(exc).__name__)
            except Exception as exc:  # noqa: BLE001 - a bug must not end the connection loop
                log.exception("AMI %s: unexpected error; reconnecting", self.address)
                self.state = "error"  # so the line below is reported even when already down
                self._set_state("down", f"AMI {self.address} failed: {describe(exc)}",
                                logging.ERROR, f"internal error: {describe(exc)}")
            finally:
                if self.connected.is_set():
                    # A session that got logged in ends with an exception too (the
                    # socket closed): reconnect quickly, the backoff starts over.
                    delay = self.min_backoff
                self.connected.clear()
                self._writer = None
                for fut in self._pending.values():
                    if not fut.done():
                        fut.set_exception(SwitchDown(f"AMI {self.address} connection lost"))
                self._pending.clear()
            if self._closing:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, max(self.config.reconnect_max_seconds, self.min_backoff))

    async def _session(self) -> None:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.config.host, self.config.port, limit=MAX_MESSAGE),
            self.action_timeout)
        try:
            banner = await asyncio.wait_for(reader.readuntil(b"\r\n"), self.action_timeout)
            if not banner.startswith(b"Asterisk Call Manager/"):
                raise ValueError(f"not an AMI server (banner {banner[:40]!r})")
            writer.write(encode_action([("Action", "Login"), ("ActionID", "hotdesk-login"),
                                        ("Username", self.config.username),
                                        ("Secret", self.config.secret),
                                        ("Events", self.events)]))
            while True:
                msg = await self._read(reader)
                if msg.get("ActionID") == "hotdesk-login" and "Response" in msg:
                    break
            if msg.get("Response") != "Success":
                raise AmiError(msg.get("Message", "login failed"))
            self._writer = writer
            self.connected.set()
            self._set_state("connected", f"AMI {self.address} connected")
            self.on_connected()
            while True:
                msg = await self._read(reader)
                if msg.get("Event") == "Shutdown":
                    log.warning("AMI %s: Asterisk is shutting down (%s)", self.address,
                                msg.get("Shutdown", "?"))
                    raise ConnectionResetError("Asterisk shut down")
                self._dispatch(msg)
        finally:
            writer.close()

    def _dispatch(self, msg: Message) -> None:
        action_id = msg.get("ActionID", "")
        items = self._lists.get(action_id)
        if items is not None and "Event" in msg:
            items.append(msg)
            if msg.get("EventList") != "Complete":
                return
            msg = {"Response": "Success", "ActionID": action_id}
        elif "Event" in msg:
            self.on_event(msg)
            return
        fut = self._pending.pop(action_id, None)
        if fut is not None and "Response" in msg and not fut.done():
            if items is None or msg.get("Response") != "Success" \
                    or msg.get("EventList") != "start":
                fut.set_result(msg)
            else:
                self._pending[action_id] = fut  # the list follows; done at its Complete

    async def list_action(self, headers: list[tuple[str, str]],
                          timeout: float | None = None) -> list[Message]:
        """An action answered by ``EventList: start``, item events and a ``…Complete``
        event: the items and the Complete event, in order. AmiError when refused."""
        action_id = f"hotdesk-{next(self._ids)}"
        self._lists[action_id] = items = []
        try:
            reply = await self.action(headers, action_id=action_id, timeout=timeout)
        finally:
            self._lists.pop(action_id, None)
        if reply.get("Response") != "Success":
            raise AmiError(reply.get("Message", f"{headers[0][1]} refused"))
        return items

    async def _read(self, reader: asyncio.StreamReader) -> Message:
        return parse_message((await reader.readuntil(b"\r\n\r\n"))[:-4])

    async def action(self, headers: list[tuple[str, str]], action_id: str = "",
                     timeout: float | None = None) -> Message:
        """Send one action and wait for its Response; SwitchDown when not connected."""
        reply = (await self._exchange([headers], [action_id] if action_id else None,
                                      timeout))[0]
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def actions(self, batch: Sequence[list[tuple[str, str]]],
                      timeout: float | None = None) -> list[Message | Exception]:
        """Several actions in one write, their replies matched by ActionID (Asterisk
        runs one connection's actions in order and answers each; see capture
        ami-notify-pipelined). Each action's Response, or its error: SwitchDown when
        not connected, NotifyError when it had no Response within ``timeout``."""
        return await self._exchange(batch, None, timeout)

    async def _exchange(self, batch: Sequence[list[tuple[str, str]]],
                        action_ids: list[str] | None,
                        timeout: float | None) -> list[Message | Exception]:
        if not batch:
            return []
        writer = self._writer
        if writer is None or not self.connected.is_set():
            return [SwitchDown(f"AMI {self.address} not connected") for _ in batch]
        ids = action_ids or [f"hotdesk-{next(self._ids)}" for _ in batch]
        timeout = timeout or self.action_timeout
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Message]] = []
        for action_id in ids:
            self._pending[action_id] = fut = loop.create_future()
            futures.append(fut)
        writer.write(b"".join(encode_action([headers[0], ("ActionID", action_id), *headers[1:]])
                              for headers, action_id in zip(batch, ids, strict=True)))
        try:
            # One timer for the batch, no Task per action (asyncio.wait takes futures).
            async with asyncio.timeout(timeout):
                await asyncio.wait(futures)
        except TimeoutError:
            pass
        finally:
            for action_id in ids:
                self._pending.pop(action_id, None)
        replies: list[Message | Exception] = []
        for headers, fut in zip(batch, futures, strict=True):
            if not fut.done():
                fut.cancel()
                replies.append(NotifyError(f"AMI {headers[0][1]}: no response in {timeout:g} s"))
            elif isinstance(fut.exception(), Exception):
                replies.append(fut.exception())  # type: ignore[arg-type]
            else:
                replies.append(fut.result())
        return replies


def from_thread(coro: Coroutine[Any, Any, T], loop: asyncio.AbstractEventLoop,
                timeout: float) -> T:
    """Run ``coro`` on the event loop from a worker thread and wait for it; after
    ``timeout`` seconds it is cancelled and TimeoutError raised."""
    fut = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        return fut.result(timeout)
    except TimeoutError:
        fut.cancel()
        raise


def notify_action(target: NotifyTarget, kind: str) -> list[tuple[str, str]]:
    """PJSIPNotify to exactly this phone (its contact URI when known), or chan_sip SIPnotify."""
    if kind == "sip":
        return [("Action", "SIPnotify"), ("Channel", target.endpoint),
                ("Variable", f"Event={target.event}")]
    where = ("URI", target.contact_uri) if target.contact_uri else ("Endpoint", target.endpoint)
    return [("Action", "PJSIPNotify"), where, ("Variable", f"Event={target.event}")]


class AmiNotifySender:
    """``hotdesk.notify.outbox.NotifySender`` over AMI, callable from a worker thread.

    ``Response: Success`` only means Asterisk took the request: PJSIPNotify answers it
    even when the endpoint has no contact and nothing is sent. Delivery is confirmed
    by the phone fetching its config, which is recorded elsewhere.
    """

    def __init__(self, client: AmiClient, loop: asyncio.AbstractEventLoop,
                 timeout: float = 15.0) -> None:
        self.client = client
        self.loop = loop
        self.timeout = timeout

    async def send_async(self, target: NotifyTarget) -> None:
        error = (await self.send_many_async([target]))[0]
        if error is not None:
            raise error

    def send(self, target: NotifyTarget) -> None:
        try:
            from_thread(self.send_async(target), self.loop, self.timeout)
        except TimeoutError:
            raise NotifyError("AMI send timed out") from None

    async def send_many_async(self, targets: Sequence[NotifyTarget]
                              ) -> list[BaseException | None]:
        """Every action written at once on the one connection, replies matched by their
        ActionID: a batch costs about one round trip, not one each."""
        kind = self.client.config.notify_action
        replies = await self.client.actions([notify_action(t, kind) for t in targets])
        out: list[BaseException | None] = []
        for target, reply in zip(targets, replies, strict=True):
            if isinstance(reply, Exception):
                out.append(reply)
            elif reply.get("Response") != "Success":
                out.append(NotifyError(reply.get("Message", "refused by Asterisk")))
            else:
                out.append(None)
                log.debug("NOTIFY %s for %s handed to the switch", target.event,
                          target.contact_uri or target.endpoint)
        return out

    def send_many(self, targets: Sequence[NotifyTarget]) -> list[BaseException | None]:
        """:class:`hotdesk.notify.outbox.PipelinedSender`, from a worker thread."""
        try:
            return from_thread(self.send_many_async(targets), self.loop, self.timeout)
        except TimeoutError:
            return [NotifyError("AMI send timed out") for _ in targets]
