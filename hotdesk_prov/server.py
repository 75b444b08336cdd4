"""``hotdesk prov-serve``: a lean asyncio HTTP server for phone configs only.

Why not the web admin's WSGI server: phones poll, and a site of thousands of phones
rebooting after a power cut asks for its configs at once. Each request here is parsed
by a few string operations and answered by :class:`hotdesk.provisioning.serving.ConfigServer`
(one indexed read, a cached pre-encoded file) on the event loop; database writes (fetch
records, refusal audits) go to a one-thread executor before the reply is sent, so the
loop never waits on a database lock. Several worker processes share one listening
socket (pre-fork), so every core serves. TLS (and mutual TLS with the phones' device
certificates) is asyncio's, with the context of :mod:`hotdesk.tls`; SIGHUP reloads it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from hotdesk import tls
from hotdesk.provisioning.client_certs import certificate_macs
from hotdesk.provisioning.serving import (
    ConfigServer,
    FetchReply,
    FetchRequest,
    Network,
    client_address,
    parse_networks,
)
from hotdesk.settings import Config
from hotdesk_prov.http import (
    MAX_HEADER_BYTES,
    BadRequest,
    DateCache,
    Request,
    parse_head,
    response,
)

log = logging.getLogger(__name__)


@dataclass
class Limits:
    """Seconds a connection may sit idle between requests, and to finish sending one."""

    idle_seconds: float = 30.0
    request_seconds: float = 10.0
    sweep_seconds: float = 1.0


@dataclass
class ProvApp:
    """What every connection of one worker shares."""

    server: ConfigServer
    prefix: str  # URL path before /<token>/<file>, from [provisioning] base_url
    executor: concurrent.futures.Executor
    limits: Limits = field(default_factory=Limits)
    date: DateCache = field(default_factory=DateCache)
    connections: set[ProvProtocol] = field(default_factory=set)
    ssl: ssl.SSLContext | None = None
    trusted_proxies: list[Network] = field(default_factory=list)

    def split(self, path: str) -> tuple[str, str] | None:
        """``/prov/<token>/<file>`` -> (token, file), or None for any other path."""
        if not path.startswith(self.prefix):
            return None
        token, sep, filename = path[len(self.prefix):].partition("/")
        if not sep or not token or not filename:
            return None
        return token, filename


def prefix_of(base_url: str) -> str:
    return urlsplit(base_url).path.rstrip("/") + "/"


class ProvProtocol(asyncio.Protocol):
    def __init__(self, app: ProvApp) -> None:
        self.app = app
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.source = ""
        self.client_macs: frozenset[str] | None = None
        self.busy = False  # a reply is waiting for its database write
        self.closing = False
        self.idle = 0.0  # seconds without bytes from the peer, counted by the sweeper
        self.paused = False

    # -- asyncio callbacks ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.source = str(peer[0]) if peer else ""
        if transport.get_extra_info("peercert"):  # verified by OpenSSL against client_ca
            self.client_macs = certificate_macs(transport.get_extra_info("peercert"))
        self.app.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.app.connections.discard(self)
        self.closing = True

    def data_received(self, data: bytes) -> None:
        self.idle = 0.0
        self.buffer += data
        if not self.busy:
            self.process()

    def pause_writing(self) -> None:
        # A client that pipelines requests but never reads: stop reading its requests.
        self.paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.paused = False
        if self.transport is not None and not self.closing:
            self.transport.resume_reading()

    # -- requests ---------------------------------------------------------------------

    def process(self) -> None:
        """Answer every complete request in the buffer, in order."""
        while not self.busy and not self.closing:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEADER_BYTES:
                    self.fail(431, "request header too large")
                return
            if end > MAX_HEADER_BYTES:
                self.fail(431, "request header too large")
                return
            head, self.buffer = self.buffer[:end], self.buffer[end + 4:]
            try:
                request = parse_head(head.lstrip(b"\r\n"))
            except BadRequest as exc:
                self.fail(exc.status, str(exc))
                return
            self.answer(request)

    def answer(self, request: Request) -> None:
        keep_alive = request.keep_alive
        if request.method not in ("GET", "HEAD"):
            self.send(FetchReply(405, b"405\n", headers={"Allow": "GET, HEAD"}), request,
                      keep_alive)
            return
        parts = self.app.split(request.path)
        if parts is None:
            self.send(FetchReply(404, b"404\n"), request, keep_alive)
            return
        headers = request.headers
        source = client_address(self.source, headers.get("x-forwarded-for", ""),
                                self.app.trusted_proxies)
        fetch = FetchRequest(
            token=parts[0], filename=parts[1], source=source, method=request.method,
            uri=request.target, authorization=headers.get("authorization", ""),
            user_agent=headers.get("user-agent", ""),
            if_none_match=headers.get("if-none-match", ""), client_macs=self.client_macs)
        try:
            reply = self.app.server.decide(fetch)
        except Exception:  # noqa: BLE001 - one bad request must not take the worker down
            log.exception("config request from %s failed", self.source)
            reply = FetchReply(500, b"500\n")
        if reply.pending is None:
            self.send(reply, request, keep_alive)
            return
        self.busy = True
        future = asyncio.get_running_loop().run_in_executor(
            self.app.executor, self.app.server.commit, reply)
        future.add_done_callback(lambda _f: self.written(reply, request, keep_alive))

    def written(self, reply: FetchReply, request: Request, keep_alive: bool) -> None:
        self.busy = False
        if self.closing:
            return
        self.send(reply, request, keep_alive)
        self.process()

    def send(self, reply: FetchReply, request: Request, keep_alive: bool) -> None:
        if self.transport is None or self.closing:
            return
        self.transport.write(response(reply.status, reply.body, reply.content_type,
                                      reply.headers, self.app.date.value(), keep_alive,
                                      head_only=request.method == "HEAD"))
        if not keep_alive:
            self.close()

    def fail(self, status: int, reason: str) -> None:
        """Answer a request we cannot parse, then close: the stream cannot be trusted."""
        log.info("bad HTTP request from %s: %s (%d)", self.source, reason, status)
        if self.transport is not None and not self.closing:
            self.transport.write(response(status, f"{status}\n".encode(),
                                          "text/plain; charset=utf-8", {},
                                          self.app.date.value(), keep_alive=False))
        self.close()

    def close(self) -> None:
        self.closing = True
        self.buffer = b""
        if self.transport is not None:
            self.transport.close()

    def tick(self, seconds: float) -> None:
        """Called by the sweeper: close connections that stalled or sat idle too long."""
        if self.busy or self.closing:
            return
        self.idle += seconds
        if self.buffer and self.idle >= self.app.limits.request_seconds:
            self.fail(408, "request not completed in time")
        elif self.idle >= self.app.limits.idle_seconds:
            self.close()


async def _sweep(app: ProvApp) -> None:
    step = app.limits.sweep_seconds
    while True:
        await asyncio.sleep(step)
        for conn in list(app.connections):
            conn.tick(step)


def make_app(server: ConfigServer, limits: Limits | None = None,
             ssl_context: ssl.SSLContext | None = None) -> ProvApp:
    executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="prov-db")
    prov = server.config.provisioning
    return ProvApp(server=server, prefix=prefix_of(prov.base_url),
                   executor=executor, limits=limits or Limits(), ssl=ssl_context,
                   trusted_proxies=parse_networks(prov.trusted_proxies,
                                                  "[provisioning] trusted_proxies"))


def tls_files(config: Config) -> tls.TlsFiles:
    """The ``[provisioning]`` TLS files (certfile "" = plain HTTP)."""
    prov = config.provisioning
    return tls.TlsFiles(prov.tls_certfile, prov.tls_keyfile, prov.client_ca)


async def serve_socket(app: ProvApp, sock: socket.socket, stop: asyncio.Event) -> None:
    """Serve ``sock`` until ``stop`` is set."""
    loop = asyncio.get_running_loop()
    # A client that connects and never completes the TLS handshake (or speaks plain HTTP
    # to the TLS port) is dropped by asyncio after request_seconds, logged at debug level.
    srv = await loop.create_server(
        lambda: ProvProtocol(app), sock=sock, backlog=1024, ssl=app.ssl,
        ssl_handshake_timeout=app.limits.request_seconds if app.ssl else None)
    sweeper = asyncio.ensure_future(_sweep(app))
    try:
        await stop.wait()
    finally:
        sweeper.cancel()
        srv.close()
        for conn in list(app.connections):
            conn.close()
        await srv.wait_closed()
        # peewee keeps one connection per thread: close the executor's and the loop's.
        app.executor.submit(app.server.db.close)
        app.executor.shutdown(wait=True)
        app.server.db.close()


def listen_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def new_event_loop(kind: str = "auto") -> asyncio.AbstractEventLoop:
    """uvloop when installed (``auto``) or asked for; else the standard loop."""
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run_worker(make_server: Callable[[], ConfigServer], sock: socket.socket,
               loop_kind: str = "auto", limits: Limits | None = None) -> None:
    """One worker process: serve until SIGTERM or SIGINT; SIGHUP reloads the TLS files."""
    loop = new_event_loop(loop_kind)
    asyncio.set_event_loop(loop)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = make_server()
    files = tls_files(server.config)
    context = tls.server_context(files) if files.enabled else None
    if context is not None:
        tls.limit_asyncio_tls_buffers()
    # SIGHUP (systemctl reload) never stops a worker: it reloads the TLS files, if any.
    loop.add_signal_handler(signal.SIGHUP, tls.reload, context, files,
                            f"prov-serve worker {os.getpid()}")
    try:
        loop.run_until_complete(serve_socket(make_app(server, limits, context), sock, stop))
    finally:
        loop.close()


class ThreadedServer:
    """One worker on its own thread of this process: for tests and embedding."""

    def __init__(self, server: ConfigServer, host: str = "127.0.0.1", port: int = 0,
                 limits: Limits | None = None, loop_kind: str = "asyncio",
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.sock = listen_socket(host, port)
        self.port = self.sock.getsockname()[1]
        self.app = make_app(server, limits, ssl_context)
        self.loop = new_event_loop(loop_kind)
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="prov-serve")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            self._ready.set()
            await serve_socket(self.app, self.sock, self._stop)

        self.loop.run_until_complete(main())
        self.loop.close()

    def start(self) -> ThreadedServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._stop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self.sock.close()


def prefork(make_server: Callable[[], ConfigServer], sock: socket.socket, workers: int,
            loop_kind: str = "auto") -> int:
    """Run ``workers`` processes on the shared socket; restart any that dies.

    ``make_server`` runs in each child after the fork, so no database connection is
    shared between processes. SIGTERM/SIGINT stop them all.
    """
    stopping = False
    children: dict[int, int] = {}  # pid -> slot
    restarts = [0.0] * workers

    def spawn(slot: int) -> None:
        pid = os.fork()
        if pid == 0:  # child
            code = 0
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the worker's handler
                run_worker(make_server, sock, loop_kind)
            except BaseException:  # noqa: BLE001 - report, then leave without the parent's cleanup
                log.exception("prov-serve worker %d failed", slot)
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        children[pid] = slot
        log.info("prov-serve worker %d started (pid %d)", slot, pid)

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        if signum == signal.SIGHUP:  # each worker reloads its own TLS context
            for pid in list(children):
                try:
                    os.kill(pid, signal.SIGHUP)
                except ProcessLookupError:
                    pass
            return
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    for slot in range(workers):
        spawn(slot)
    while children:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for clarity
            continue
        slot = children.pop(pid, None)
        if slot is None or stopping:
            continue
        log.warning("prov-serve worker %d (pid %d) exited with status %d; restarting", slot,
                    pid, os.waitstatus_to_exitcode(status))
        # A worker dying again at once is restarted at most once a second.
        delay = max(0.0, restarts[slot] + 1.0 - time.monotonic())
        time.sleep(delay)
        restarts[slot] = time.monotonic()
        spawn(slot)
    return 0
