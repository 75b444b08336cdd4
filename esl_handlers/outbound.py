"""The outbound Event Socket server: FreeSWITCH's ``socket`` app hands ``*70``/``*71`` calls here.

Each call runs the core's call script (``hotdesk.calls.callflow``) through the one driver
(``hotdesk.calls.driver``) and only translates its switch actions into ``sendmsg
execute`` commands (and the voicemail PIN read into ``api user_data``). In ``async
full`` mode every sendmsg is answered ``+OK`` at once (even after the caller hung up,
when nothing runs), so the result of an action is the CHANNEL_EXECUTE_COMPLETE whose
``Application-UUID`` is the ``Event-UUID`` we sent. Every wait is bounded: a channel
that never completes, a switch that vanishes or a peer that sends garbage ends the
call, never a thread.

One thread per call: the database driver and the service are blocking, and a call
spends nearly all its time waiting on the switch, so threads need no monkey-patching.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from esl_handlers.wire import ConnectionClosed, Message, ProtocolError, Reader, command
from hotdesk import logctx
from hotdesk.calls.callflow import (
    Answer,
    CallerHungUp,
    Collect,
    Hangup,
    Play,
    ReadVoicemailPin,
    SetVar,
    SwitchAction,
    login_call,
    logout_call,
)
from hotdesk.calls.driver import CallDriver, Finished
from hotdesk.calls.service import CallContext, Outcome, SwitchPin
from hotdesk.ops import metrics
from hotdesk.runtime import Runtime
from hotdesk.settings import Config, parse_listen
from hotdesk.store.db import DbSlots, close_quietly

log = logging.getLogger(__name__)

PIN_VARIABLE = "hotdesk_pin"
# Seconds FreeSWITCH keeps the socket after a hang-up; bounded (plain `linger` is 600 s).
LINGER_SECONDS = 5
REPLY_TIMEOUT = 10.0
# A prompt longer than this is a stuck channel, not a prompt.
MEDIA_TIMEOUT = 120.0
HANGUP_TIMEOUT = 5.0


class CallGone(Exception):
    """The caller hung up or the switch went away; the script must stop."""


@dataclass
class CallResult:
    outcome: Outcome | None
    call_id: str


def call_context(channel: Mapping[str, str]) -> CallContext:
    """The calling phone as the core sees it, from the ``connect`` reply's channel data.

    endpoint: ``variable_user_name`` is the directory user FreeSWITCH authenticated
    (mod_sofia sets it on auth-calls), so it cannot be forged in a From header;
    ``variable_sip_from_user`` and ``Caller-Username`` are fall-backs for unauthenticated
    profiles. source: the address the INVITE really came from. domain: the directory
    domain, which selects the tenant on a multi-tenant FreeSWITCH.
    """
    endpoint = (channel.get("variable_user_name") or channel.get("variable_sip_from_user")
                or channel.get("Caller-Username") or "")
    ip = channel.get("variable_sip_received_ip") or channel.get("variable_sip_network_ip") or ""
    port = (channel.get("variable_sip_received_port")
            or channel.get("variable_sip_network_port") or "")
    source = f"{ip}:{port}" if ip and port else channel.get("Caller-Network-Addr", "")
    domain = channel.get("variable_domain_name") or channel.get("variable_sip_from_host") or ""
    return CallContext(switch="freeswitch", call_id=channel.get("Unique-ID", ""),
                       endpoint=endpoint, source=source, domain=domain)


def pagd_args(prompt: str, max_digits: int, timeout_ms: int, transfer_on_fail: str = "") -> str:
    """play_and_get_digits arguments: one try, ``#`` ends, no transfer on failure.

    transfer_on_fail is passed explicitly (empty): a formatter that writes a missing
    value as ``None`` would make FreeSWITCH transfer the caller to extension "None".
    """
    digit_timeout = min(timeout_ms, 3000)
    parts = ["1", str(max_digits), "1", str(timeout_ms), "#", prompt, "silence_stream://250",
             PIN_VARIABLE, "\\d+", str(digit_timeout), transfer_on_fail]
    return " ".join(parts)


class EslCall:
    """One outbound Event Socket session, from ``connect`` to ``exit``."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = Reader(sock)
        self.completed: dict[str, Mapping[str, str]] = {}
        self.hung_up = False
        self.closed = False

    # -- framing ----------------------------------------------------------------------

    def _next(self, deadline: float) -> Message:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no answer from FreeSWITCH in time")
        self.sock.settimeout(remaining)
        try:
            return self.reader.read()
        except TimeoutError:
            raise TimeoutError("no answer from FreeSWITCH in time") from None
        except (ConnectionClosed, OSError) as exc:
            self.closed = self.hung_up = True
            raise CallGone(f"connection lost: {exc}") from None

    def _note(self, msg: Message) -> None:
        """Remember what an unsolicited message tells us about the channel."""
        ctype = msg.content_type
        if ctype == "text/disconnect-notice":
            self.hung_up = True
            if msg.headers.get("Content-Disposition", "disconnect") != "linger":
                self.closed = True
            return
        if ctype != "text/event-plain":
            return
        event = msg.event_headers()  # decoded header by header: ~180 per event
        name = event.get("Event-Name", "")
        if name == "CHANNEL_EXECUTE_COMPLETE" and event.get("Application-UUID"):
            self.completed[event["Application-UUID"]] = event
        elif name in ("CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE"):
            self.hung_up = True

    def request(self, data: bytes, timeout: float = REPLY_TIMEOUT) -> Message:
        """Send one command and return its command/reply; events read meanwhile are noted."""
        if self.closed:
            raise CallGone("connection closed")
        try:
            self.sock.sendall(data)
        except OSError as exc:
            self.closed = self.hung_up = True
            raise CallGone(f"send failed: {exc}") from None
        deadline = time.monotonic() + timeout
        while True:
            msg = self._next(deadline)
            if msg.content_type in ("command/reply", "api/response"):
                return msg
            self._note(msg)
            if self.closed:
                raise CallGone("switch closed the session")

    # -- session ----------------------------------------------------------------------

    def connect(self) -> dict[str, str]:
        reply = self.request(command("connect"))
        if reply.content_type != "command/reply" or not reply.reply_text.startswith("+OK"):
            raise ProtocolError(f"connect refused: {reply.reply_text!r}")
        channel = reply.event()
        self.request(command("myevents"))
        self.request(command(f"linger {LINGER_SECONDS}"))
        return channel

    def execute(self, app: str, arg: str = "", timeout: float = MEDIA_TIMEOUT,
                stop_on_hangup: bool = True) -> Mapping[str, str]:
        """Run one dialplan application and wait for its CHANNEL_EXECUTE_COMPLETE."""
        if self.hung_up and stop_on_hangup:
            raise CallGone("caller hung up")
        event_uuid = str(uuid.uuid4())
        headers = {"call-command": "execute", "execute-app-name": app}
        if arg:
            headers["execute-app-arg"] = arg
        headers["Event-UUID"] = event_uuid
        reply = self.request(command("sendmsg", headers))
        if not reply.reply_text.startswith("+OK"):
            raise CallGone(f"{app} refused: {reply.reply_text}")
        deadline = time.monotonic() + timeout
        while event_uuid not in self.completed:
            if self.hung_up and stop_on_hangup:
                raise CallGone("caller hung up")
            if self.closed:
                raise CallGone("switch closed the session")
            msg = self._next(deadline)
            if msg.content_type in ("command/reply", "api/response"):
                continue  # a late reply; nothing is waiting for it
            self._note(msg)
        return self.completed.pop(event_uuid)

    def finish(self) -> None:
        """Send ``exit`` (bounded) and close; FreeSWITCH then continues or ends the call."""
        if not self.closed:
            try:
                self.request(command("exit"), timeout=2.0)
            except (CallGone, TimeoutError, ProtocolError, OSError):
                pass
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass


def run_script(call: EslCall, driver: CallDriver,
               db_gate: contextlib.AbstractContextManager[object] | None = None,
               on_decided: Callable[[], None] = lambda: None) -> Outcome:
    """Drive a call through ``driver``: execute each switch action, feed back its result,
    relay hang-ups.

    The driver's steps are where the database work happens; the gate lets only a few
    calls do that at once (like the FastAGI server's thread pool), so hundreds of call
    threads never pile up on SQLite's write lock past its timeout. ``on_decided`` runs
    once the outcome is committed (the script sets HOTDESK_RESULT next, or ends).
    """
    gate = db_gate or contextlib.nullcontext()
    reply: object = None
    error: BaseException | None = None
    while True:
        with gate:
            step = driver.advance(reply, error)
        if isinstance(step, Finished | SetVar):
            on_decided()
        if isinstance(step, Finished):
            return step.outcome
        reply, error = None, None
        try:
            reply = _perform(call, step)
        except (CallGone, TimeoutError, ProtocolError) as exc:
            # Hung up, switch gone, stuck channel or garbage: no more media either way.
            log.info("call ends early: %s", exc)
            call.hung_up = True
            error = CallerHungUp(str(exc))


def _perform(call: EslCall, action: SwitchAction) -> str | SwitchPin | None:
    if isinstance(action, ReadVoicemailPin):
        return read_voicemail_pin(call, action)
    if isinstance(action, Answer):
        call.execute("answer")
        return None
    if isinstance(action, Collect):
        timeout = action.timeout_ms / 1000 + MEDIA_TIMEOUT
        event = call.execute("play_and_get_digits",
                             pagd_args(action.prompt, action.max_digits, action.timeout_ms),
                             timeout=timeout)
        result = event.get("variable_read_result")
        if result is None:
            # FreeSWITCH ends play_and_get_digits at once, reading nothing, when the
            # prompt cannot be played: to the caller every PIN then "times out".
            log.warning("play_and_get_digits read nothing and set no read_result: is the "
                        "sound file %r installed (FreeSWITCH log: 'Error Opening File')?",
                        action.prompt)
            return ""
        if result == "failure":
            return ""
        return event.get(f"variable_{PIN_VARIABLE}", "")
    if isinstance(action, Play):
        event = call.execute("playback", action.prompt)
        if "NOT FOUND" in event.get("Application-Response", "").upper():
            log.warning("playback of %r failed (%s): install the sound file or change "
                        "[prompts.freeswitch]", action.prompt,
                        event.get("Application-Response"))
        return None
    if isinstance(action, SetVar):
        call.execute("set", f"{action.name}={action.value}")
        return None
    if isinstance(action, Hangup):
        try:
            call.execute("hangup", "NORMAL_CLEARING", timeout=HANGUP_TIMEOUT,
                         stop_on_hangup=False)
        except (CallGone, TimeoutError):
            pass  # the channel is gone either way
        call.hung_up = True
        return None
    raise TypeError(f"unknown call action {action!r}")


def read_voicemail_pin(call: EslCall, action: ReadVoicemailPin) -> SwitchPin:
    """The directory's ``vm-password`` of mailbox@domain, over the call's own socket
    (``async full`` allows ``api``); ``-ERR no reply`` = the user has none. The reply
    carries the PIN: it is never logged."""
    reply = call.request(command(f"api user_data {action.mailbox}@{action.domain} "
                                 "param vm-password"))
    body = reply.body.decode("utf-8", "replace").strip()
    if not body or body.startswith("-ERR"):
        return SwitchPin(None)
    return SwitchPin(body)


def handle_call(sock: socket.socket, runtime: Runtime,
                db_gate: contextlib.AbstractContextManager[object] | None = None,
                on_decided: Callable[[], None] = lambda: None) -> CallResult:
    """Serve one connection from FreeSWITCH's ``socket`` application."""
    call = EslCall(sock)
    config: Config = runtime.config
    prompts = config.prompts("freeswitch")
    peer = _peer(sock)
    call_id = ""
    try:
        try:
            channel = call.connect()
        except (CallGone, TimeoutError, ProtocolError) as exc:
            log.warning("Event Socket connection from %s dropped before the call started: %s",
                        peer, exc)
            return CallResult(None, "")
        ctx = call_context(channel)
        call_id = ctx.call_id
        with logctx.call_context(call_id):
            action = channel.get("variable_hotdesk_action", "")
            extension = channel.get("variable_hotdesk_ext", "")
            log.info("%s call from %s (%s, domain %s)", action or "unknown", ctx.endpoint,
                     ctx.source or "no source", ctx.domain or "-")
            if action == "logout":
                script = logout_call(ctx, prompts)
            else:
                if action != "login":
                    log.warning("variable hotdesk_action is %r; treating the call as a login "
                                "(set hotdesk_action=login|logout in the dialplan)", action)
                script = login_call(ctx, extension, prompts, config.policy)
            feature = "logout" if action == "logout" else "login"
            driver = CallDriver(script, runtime.service, ctx, feature, metrics.CALLS_SEEN)
            outcome = run_script(call, driver, db_gate, on_decided)
            log.info("call finished: %s", outcome.value)
            return CallResult(outcome, call_id)
    finally:
        call.finish()
        close_quietly(runtime.db)  # peewee connections are per thread; this one ends


def _peer(sock: socket.socket) -> str:
    try:
        host, port = sock.getpeername()[:2]
        return f"{host}:{port}"
    except OSError:
        return "?"


class EslServer:
    """Accepts FreeSWITCH's outbound connections; one thread per call, bounded in number.
    ``on_decided`` runs when a call's outcome is committed: the NOTIFY drain uses it to
    send the fresh outbox row at once instead of at its next poll."""

    def __init__(self, runtime: Runtime, listen: str | None = None,
                 max_calls: int = 500, reuse_port: bool = False,
                 on_decided: Callable[[], None] | None = None) -> None:
        self.runtime = runtime
        self.on_decided = on_decided or (lambda: None)
        self.reuse_port = reuse_port
        self.host, self.port = parse_listen(listen or runtime.config.esl.listen)
        self.max_calls = max_calls
        self._sock: socket.socket | None = None
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._acceptor: threading.Thread | None = None
        self.calls_served = 0
        # Database steps of calls: at most db_slots at once, each giving its connection
        # back, so calls waiting for digits hold no connection.
        self.db_gate = DbSlots(runtime.db, runtime.config.esl.db_slots)

    @property
    def address(self) -> tuple[str, int]:
        assert self._sock is not None
        return self._sock.getsockname()[:2]

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.reuse_port:  # several ``hotdesk esl`` processes share the port (--workers)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((self.host, self.port))
        sock.listen(128)
        sock.settimeout(0.2)
        self._sock = sock
        self._acceptor = threading.Thread(target=self._accept_loop, name="esl-accept",
                                          daemon=True)
        self._acceptor.start()
        log.info("outbound Event Socket server listening on %s:%d", *self.address)

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
                # Small request/reply messages: without this, Nagle + delayed ACK add
                # ~40 ms to every command round trip.
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                time.sleep(0.1)
                continue
            with self._lock:
                busy = len(self._threads)
            if busy >= self.max_calls:
                log.warning("%d calls in progress; refusing a new Event Socket connection "
                            "(FreeSWITCH continues its dialplan)", busy)
                conn.close()
                continue
            thread = threading.Thread(target=self._serve, args=(conn,), name="esl-call",
                                      daemon=True)
            with self._lock:
                self._threads.add(thread)
            try:
                thread.start()
            except RuntimeError as exc:  # out of threads: refuse this call, keep accepting
                log.error("cannot start a thread for an Event Socket call: %s", exc)
                with self._lock:
                    self._threads.discard(thread)
                conn.close()

    def _serve(self, conn: socket.socket) -> None:
        try:
            handle_call(conn, self.runtime, self.db_gate, self.on_decided)
        except Exception:
            log.exception("unexpected error in an Event Socket call")
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())
                self.calls_served += 1

    def active_calls(self) -> int:
        with self._lock:
            return len(self._threads)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._sock is not None:
            self._sock.close()
        if self._acceptor is not None:
            self._acceptor.join(timeout)
        with self._lock:
            threads = list(self._threads)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
