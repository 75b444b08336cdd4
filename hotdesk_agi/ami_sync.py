"""A small blocking AMI request client for processes without an event loop.

``hotdesk web``, ``hotdesk prov-serve``, the worker and the CLI need a few AMI actions
(``Getvar`` of an account, ``ModuleLoad`` after writing the idle accounts, the doctor's
look-ups) but run no asyncio AMI connection. One logged-in connection (``Events: off``)
is kept and reused; requests are serialised; a broken connection is re-opened once per
request. Same framing as :mod:`hotdesk_agi.ami` (CR LF, blank line ends a message).

:meth:`BlockingAmi.pipeline` writes a window of actions at once and matches the replies
by ActionID (Asterisk runs a connection's actions in order and answers each, see the
captures ami-notify-pipelined and ami-getvar-pipelined): the worker's drift check reads
thousands of accounts per tick at about one round trip per window, not one per read.
"""

from __future__ import annotations

import itertools
import socket
import threading
from collections import deque
from collections.abc import Sequence

from hotdesk.settings import AmiConfig
from hotdesk_agi.ami import MAX_MESSAGE, Message, encode_action, parse_message

# Actions written at once by pipeline(): their replies (~120 bytes each) stay well inside
# the socket buffers, so Asterisk never blocks writing while hotdesk is still writing.
WINDOW = 256


class AmiRequestError(Exception):
    """AMI could not be reached, refused the login, or did not answer in time."""


class BlockingAmi:
    def __init__(self, config: AmiConfig, timeout: float = 5.0) -> None:
        self.config = config
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buf = b""
        self._blocks: deque[bytes] = deque()  # complete messages read ahead of use
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock, self._buf = None, b""
        self._blocks.clear()

    def _read_block(self) -> bytes:
        """The next message; every complete one a read brings is split off at once, so
        a window of replies costs linear time, not a copy of the buffer per message."""
        assert self._sock is not None
        while not self._blocks:
            *blocks, self._buf = self._buf.split(b"\r\n\r\n")
            self._blocks.extend(blocks)
            if blocks:
                break
            if len(self._buf) > MAX_MESSAGE * 16:
                raise AmiRequestError(f"AMI {self.address}: message too large")
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("AMI closed the connection")
            self._buf += chunk
        return self._blocks.popleft()

    def _connect(self) -> None:
        try:
            sock = socket.create_connection((self.config.host, self.config.port), self.timeout)
        except OSError as exc:
            raise AmiRequestError(f"AMI {self.address} unreachable: {exc}") from None
        sock.settimeout(self.timeout)
        self._sock, self._buf = sock, b""
        self._blocks.clear()
        try:
            while b"\r\n" not in self._buf:
                chunk = sock.recv(1024)
                if not chunk:
                    raise ConnectionResetError("closed before the banner")
                self._buf += chunk
            banner, self._buf = self._buf.split(b"\r\n", 1)
            if not banner.startswith(b"Asterisk Call Manager/"):
                raise AmiRequestError(f"{self.address} is not an AMI server")
            sock.sendall(encode_action([("Action", "Login"), ("ActionID", "hotdesk-login"),
                                        ("Username", self.config.username),
                                        ("Secret", self.config.secret), ("Events", "off")]))
            while True:
                msg = parse_message(self._read_block())
                if msg.get("ActionID") == "hotdesk-login" and "Response" in msg:
                    break
        except (OSError, AmiRequestError) as exc:
            self._drop()
            if isinstance(exc, AmiRequestError):
                raise
            raise AmiRequestError(f"AMI {self.address}: {exc}") from None
        if msg.get("Response") != "Success":
            self._drop()
            raise AmiRequestError(f"AMI {self.address} refused the login of "
                                  f"{self.config.username!r}: {msg.get('Message', '?')} "
                                  "(check [ami] username/secret and manager.conf)")

    def _exchange(self, headers: list[tuple[str, str]], complete: str | None,
                  raw: bool) -> list[Message] | bytes:
        if self._sock is None:
            self._connect()
        assert self._sock is not None
        action_id = f"hotdesk-sync-{next(self._ids)}"
        self._sock.sendall(encode_action([headers[0], ("ActionID", action_id), *headers[1:]]))
        out: list[Message] = []
        while True:
            block = self._read_block()
            msg = parse_message(block)
            if msg.get("ActionID") != action_id:
                continue  # an event or a late reply of an abandoned request
            if raw:
                return block
            out.append(msg)
            if complete is None or msg.get("Response") == "Error" or msg.get("Event") == complete:
                return out

    def request(self, headers: list[tuple[str, str]], complete: str | None = None,
                raw: bool = False) -> list[Message] | bytes:
        with self._lock:
            for attempt in (1, 2):
                try:
                    return self._exchange(headers, complete, raw)
                except (OSError, ConnectionResetError) as exc:
                    self._drop()
                    if attempt == 2:
                        raise AmiRequestError(f"AMI {self.address}: {exc or 'timed out'}") \
                            from None
            raise AssertionError("unreachable")  # pragma: no cover

    def pipeline(self, actions: Sequence[list[tuple[str, str]]]
                 ) -> list[Message | AmiRequestError]:
        """Every action's Response, in order; WINDOW actions are written at once. A
        window the connection broke in before any reply is re-sent once on a new
        connection (like request()); otherwise its unanswered actions, and every one
        after them, get the AmiRequestError (nothing is sent twice)."""
        out: list[Message | AmiRequestError] = []
        with self._lock:
            for start in range(0, len(actions), WINDOW):
                window = actions[start:start + WINDOW]
                replies: list[Message] = []
                for attempt in (1, 2):
                    try:
                        self._exchange_window(window, replies)
                        break
                    except (OSError, AmiRequestError) as exc:
                        self._drop()
                        error = exc if isinstance(exc, AmiRequestError) else \
                            AmiRequestError(f"AMI {self.address}: {exc or 'timed out'}")
                        if attempt == 1 and not replies and not isinstance(exc,
                                                                           AmiRequestError):
                            continue
                        out += replies
                        return out + [error] * (len(actions) - len(out))
                out += replies
        return out

    def _exchange_window(self, window: Sequence[list[tuple[str, str]]],
                         replies: list[Message]) -> None:
        if self._sock is None:
            self._connect()
        assert self._sock is not None
        ids = [f"hotdesk-sync-{next(self._ids)}" for _ in window]
        self._sock.sendall(b"".join(encode_action([h[0], ("ActionID", i), *h[1:]])
                                    for h, i in zip(window, ids, strict=True)))
        while len(replies) < len(ids):
            msg = parse_message(self._read_block())
            if msg.get("ActionID") == ids[len(replies)] and "Response" in msg:
                replies.append(msg)
            # else: an event or a late reply of an abandoned request

    def action(self, headers: list[tuple[str, str]]) -> Message:
        """One action, its Response message."""
        result = self.request(headers)
        assert isinstance(result, list)
        return result[0]

    def action_list(self, headers: list[tuple[str, str]], complete: str) -> list[Message]:
        """A list action: the Response, the item events, the ``complete`` event."""
        result = self.request(headers, complete)
        assert isinstance(result, list)
        return result

    def action_raw(self, headers: list[tuple[str, str]]) -> bytes:
        """The reply block as bytes (ListCommands repeats no key, but keeps order)."""
        result = self.request(headers, raw=True)
        assert isinstance(result, bytes)
        return result
