"""One long-lived inbound Event Socket connection to FreeSWITCH (NOTIFYs, look-ups).

A supervisor thread connects, authenticates and then reads every message; requests
(``api``, ``sendevent``) are serialised and wait for their reply with a timeout. When
the connection drops (FreeSWITCH restarts, network trouble, wrong password) requests
fail at once with :class:`EslUnavailable` and the supervisor reconnects with
exponential backoff. The log gets one line per state change, not one per retry.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Sequence

from esl_handlers.wire import ConnectionClosed, Message, ProtocolError, Reader, command
from hotdesk.ops.supervise import describe

log = logging.getLogger(__name__)


class EslUnavailable(Exception):
    """No authenticated connection to FreeSWITCH right now."""


class EslError(Exception):
    """FreeSWITCH answered with an error."""


_LOST = object()
# Commands request_many() writes at once (replies of user_data reads are ~60 bytes).
PIPELINE_WINDOW = 256


class InboundConnection:
    def __init__(self, host: str, port: int, password: str, reconnect_max: float = 30.0,
                 connect_timeout: float = 3.0, reply_timeout: float = 5.0,
                 backoff_start: float = 0.5,
                 on_state: Callable[[bool, str], None] | None = None,
                 subscribe: str = "",
                 on_event: Callable[[dict[str, str]], None] | None = None,
                 label: str = "") -> None:
        self.host = host
        self.port = port
        self.password = password
        self.reconnect_max = reconnect_max
        self.connect_timeout = connect_timeout
        self.reply_timeout = reply_timeout
        self.backoff_start = backoff_start
        self._sock: socket.socket | None = None
        self._replies: queue.Queue[object] = queue.Queue()
        self._request_lock = threading.Lock()
        self._stop = threading.Event()
        self._up = threading.Event()
        self._thread: threading.Thread | None = None
        self.state = "new"
        # Told (up, detail) on every state change: the heartbeat and the drain wake-up.
        self.on_state = on_state or (lambda up, detail: None)
        # ``event plain …`` arguments sent right after auth ("" = no events, the NOTIFY
        # link); each event's decoded headers go to ``on_event`` on the reader thread.
        self.subscribe = subscribe
        self.label = label  # names this connection in the log when a process holds two
        self.on_event = on_event or (lambda headers: None)

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._supervise, name="esl-inbound", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._drop()
        if self._thread is not None:
            self._thread.join(5.0)

    @property
    def connected(self) -> bool:
        return self._up.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._up.wait(timeout)

    def _set_state(self, state: str, detail: str = "") -> None:
        if state == self.state:
            log.debug("Event Socket %s:%d still %s%s", self.host, self.port, state,
                      f": {detail}" if detail else "")
            return
        self.state = state
        where = f"{self.host}:{self.port}" + (f" ({self.label})" if self.label else "")
        try:
            self.on_state(state == "connected",
                          "password refused" if state == "auth_failed" else detail)
        except Exception:  # noqa: BLE001 - a reporting hook must not end the connection
            log.exception("Event Socket state hook failed")
        if state == "connected":
            log.info("Event Socket connected to FreeSWITCH at %s", where)
        elif state == "auth_failed":
            log.error("FreeSWITCH at %s refused the Event Socket password ([esl] password); "
                      "retrying", where)
        else:
            log.warning("Event Socket to FreeSWITCH at %s is down (%s); NOTIFYs wait in the "
                        "outbox, retrying with backoff", where, detail)

    def _supervise(self) -> None:
        delay = self.backoff_start
        while not self._stop.is_set():
            try:
                reconnect_now = self._session()
            except Exception as exc:  # noqa: BLE001 - a bug must not end the connection loop
                log.exception("Event Socket %s:%d: unexpected error; reconnecting",
                              self.host, self.port)
                self._up.clear()
                self._drop()
                self._replies.put(_LOST)
                self.state = "error"  # report it even when the link was already down
                self._set_state("down", f"internal error: {describe(exc)}")
                reconnect_now = False
            if self._stop.is_set():
                break
            if reconnect_now:
                delay = self.backoff_start
                continue  # reconnect at once after a drop, then back off
            self._stop.wait(delay)
            delay = min(delay * 2, self.reconnect_max)

    def _session(self) -> bool:
        """Connect and read until the link drops; True when it had been up (reconnect now)."""
        try:
            reader = self._connect()
        except _AuthFailed:
            self._set_state("auth_failed")
            return False
        except (OSError, ConnectionClosed, ProtocolError) as exc:
            self._set_state("down", str(exc) or type(exc).__name__)
            return False
        self._up.set()
        self._set_state("connected")
        try:
            reason = self._read_loop(reader)
        finally:
            self._up.clear()
            self._drop()
            self._replies.put(_LOST)
        if not self._stop.is_set():
            self._set_state("down", reason)
        return True

    def _connect(self) -> Reader:
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = Reader(sock)
        try:
            hello = reader.read()
            if hello.content_type != "auth/request":
                raise ProtocolError(f"expected auth/request, got {hello.content_type!r}")
            sock.sendall(command(f"auth {self.password}"))
            reply = reader.read()
            if reply.content_type == "text/disconnect-notice" or \
                    not reply.reply_text.startswith("+OK"):
                raise _AuthFailed()
            if self.subscribe:
                sock.sendall(command(f"event plain {self.subscribe}"))
                reply = reader.read()
                if not reply.reply_text.startswith("+OK"):
                    raise ProtocolError(f"event subscription refused: {reply.reply_text}")
        except BaseException:
            sock.close()
            raise
        sock.settimeout(None)
        self._sock = sock
        return reader

    def _read_loop(self, reader: Reader) -> str:
        while not self._stop.is_set():
            try:
                msg = reader.read()
            except (ConnectionClosed, OSError) as exc:
                return f"connection lost: {exc}"
            except ProtocolError as exc:
                return f"garbage from FreeSWITCH: {exc}"
            if msg.content_type in ("command/reply", "api/response"):
                self._replies.put(msg)
            elif msg.content_type == "text/event-plain":
                try:
                    self.on_event(msg.event())
                except Exception:  # noqa: BLE001 - a bad event must not end the connection
                    log.exception("Event Socket event handler failed")
            elif msg.content_type == "text/disconnect-notice":
                return msg.body.decode("utf-8", "replace").strip().splitlines()[0] \
                    if msg.body.strip() else "disconnect notice"
            # Anything else (events nobody subscribed to) is ignored.
        return "stopped"

    def _drop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    # -- requests ---------------------------------------------------------------------

    def request(self, data: bytes, timeout: float | None = None) -> Message:
        """Send one command, return its reply. Never waits longer than ``timeout``."""
        [reply] = self.request_many([data], timeout)
        if isinstance(reply, EslUnavailable):
            raise reply
        return reply

    def request_many(self, batch: Sequence[bytes], timeout: float | None = None
                     ) -> list[Message | EslUnavailable]:
        """Send the commands of ``batch`` a window (:data:`PIPELINE_WINDOW`) per write,
        then read their replies in order.

        mod_event_socket answers a connection's commands one after the other, in the
        order sent (captures esl-pipelined-batch, esl-user-data-pipelined): a window
        costs about one round trip. One entry per command: its reply, or
        :class:`EslUnavailable` for a command whose reply never came (the link dropped
        or went silent; that and every later one). ``timeout`` bounds each window."""
        out: list[Message | EslUnavailable] = []
        with self._request_lock:
            for start in range(0, len(batch), PIPELINE_WINDOW):
                failed = self._exchange(batch[start:start + PIPELINE_WINDOW], timeout, out)
                if failed is not None:
                    return out + [failed] * (len(batch) - len(out))
        return out

    def _exchange(self, window: Sequence[bytes], timeout: float | None,
                  out: list[Message | EslUnavailable]) -> EslUnavailable | None:
        """One write of ``window``, its replies appended to ``out``; why it stopped, if
        it did. Called with the request lock held."""
        sock = self._sock
        if not self._up.is_set() or sock is None:
            return EslUnavailable(f"no Event Socket connection to {self.host}:{self.port}")
        self._forget_stale_replies()
        try:
            sock.sendall(b"".join(window))
        except OSError as exc:
            return EslUnavailable(f"sending to FreeSWITCH failed: {exc}")
        deadline = time.monotonic() + (timeout or self.reply_timeout)
        for _ in window:
            reply = self._next_reply(deadline - time.monotonic())
            if isinstance(reply, EslUnavailable):
                return reply
            out.append(reply)
        return None

    def _forget_stale_replies(self) -> None:
        """Drop replies of requests that timed out earlier (the link was reset since)."""
        while True:
            try:
                self._replies.get_nowait()
            except queue.Empty:
                return

    def _next_reply(self, timeout: float) -> Message | EslUnavailable:
        """The next reply on the link, or why none will come."""
        try:
            reply = self._replies.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            # The reply stream is out of step now; reconnect rather than mis-pair.
            self._drop()
            return EslUnavailable("FreeSWITCH did not answer in time")
        if reply is _LOST:
            return EslUnavailable("connection to FreeSWITCH lost")
        assert isinstance(reply, Message)
        return reply

    def api_many(self, commands: Sequence[str], timeout: float | None = None
                 ) -> list[str | EslError | EslUnavailable]:
        """``api`` of each command, pipelined: the body, or the error api() raises."""
        out: list[str | EslError | EslUnavailable] = []
        for reply in self.request_many([command(f"api {c}") for c in commands], timeout):
            if isinstance(reply, EslUnavailable):
                out.append(reply)
                continue
            body = reply.body.decode("utf-8", "replace")
            out.append(EslError(body.strip()) if body.startswith("-ERR") else body)
        return out

    def api(self, cmd: str, timeout: float | None = None) -> str:
        """``api <cmd>``: the body as text. ``-ERR ...`` bodies raise EslError."""
        reply = self.request(command(f"api {cmd}"), timeout)
        body = reply.body.decode("utf-8", "replace")
        if body.startswith("-ERR"):
            raise EslError(body.strip())
        return body

    def sendevent(self, name: str, headers: dict[str, str],
                  timeout: float | None = None) -> str:
        """``sendevent <name>`` with headers; returns the Reply-Text (``+OK <uuid>``)."""
        reply = self.request(command(f"sendevent {name}", headers), timeout)
        return reply.reply_text


class _AuthFailed(Exception):
    pass
