"""The HTTP server under ``hotdesk web``: uvicorn (asyncio) carrying the Flask app through
a2wsgi's WSGI-to-ASGI bridge.

Why not waitress (the previous server): it gives every open connection a slot of its
``connection_limit`` (100) and cannot speak TLS. Why uvicorn: open connections are asyncio
transports, not threads, so 1,000 idle or slow clients cost some memory and no worker;
only a complete request reaches the WSGI thread pool. TLS is asyncio's (non-blocking
handshakes with a timeout), so it serves https directly with the context of
:mod:`hotdesk.tls`, reloaded in place on SIGHUP. One process, a small thread pool: modest
memory on a small box (figures in docs/benchmarks-operations.md).

uvicorn never times out a connection before its first request, nor a request head sent
a byte at a time; :class:`HeadDeadline` adds that deadline to uvicorn's HTTP protocol
(``[web] request_timeout_seconds``), so slow clients are bounded as well as cheap. The
protocol is uvicorn's httptools one when httptools is installed (about 2x h11's rate),
else its pure-Python h11 one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from a2wsgi import WSGIMiddleware
from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools not installed
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

from hotdesk import tls
from hotdesk.settings import WebConfig, parse_listen

log = logging.getLogger(__name__)


class HeadDeadline:
    """Mixed into uvicorn's HTTP protocol: a deadline for each request head.

    The clock starts when the connection is made (and again when bytes of a new request
    arrive after a response) and stops when uvicorn has parsed the request head (it then
    starts a new request cycle). A connection still without a complete head at the
    deadline is closed. Idle keep-alive time between requests is uvicorn's own
    ``timeout_keep_alive``.
    """

    request_timeout: float = 10.0
    # provided by uvicorn's protocol class
    cycle: Any
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)  # type: ignore[misc]
        self._arm()

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle
        super().data_received(data)  # type: ignore[misc]
        if self.cycle is not cycle:  # a request head was parsed
            self._disarm()
        elif self._head_timer is None and (cycle is None or cycle.response_complete):
            self._arm()  # bytes of a next request on a kept-alive connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm(self) -> None:
        self._head_timer = self.loop.call_later(self.request_timeout, self._expired)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _expired(self) -> None:
        self._head_timer = None
        if self.cycle is None or self.cycle.response_complete:
            if not self.transport.is_closing():
                self.transport.close()


def bounded_protocol(request_timeout: float, parser: str = "auto") -> type[asyncio.Protocol]:
    """uvicorn's httptools (``auto`` when installed) or h11 protocol with the deadline."""
    base = HttpToolsProtocol if parser != "h11" and HttpToolsProtocol is not None \
        else H11Protocol
    return type(f"Bounded{base.__name__}", (HeadDeadline, base),
                {"request_timeout": request_timeout})


@dataclass
class Listener:
    """One uvicorn server: the TLS (or plain) main port, or the plain redirect port."""

    server: uvicorn.Server
    sock: socket.socket


class _Server(uvicorn.Server):
    """Signals are handled once for all listeners by :func:`serve`, not per server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(address: str) -> socket.socket:
    host, port = parse_listen(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {address}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def make_listener(asgi: Any, web: WebConfig, sock: socket.socket,
                  context: ssl.SSLContext | None, parser: str = "auto") -> Listener:
    config = uvicorn.Config(
        asgi, http=bounded_protocol(web.request_timeout_seconds, parser), lifespan="off",
        interface="asgi3", proxy_headers=False,  # webadmin.app.trust_proxies decides
        server_header=False, date_header=True, access_log=False, log_config=None,
        limit_concurrency=web.max_connections, timeout_keep_alive=web.keepalive_seconds,
        backlog=2048, ws="none",
        ssl_context_factory=(lambda _cfg, _default: context) if context else None)
    return Listener(_Server(config), sock)


async def serve(listeners: list[Listener], context: ssl.SSLContext | None,
                files: tls.TlsFiles) -> None:
    """Run every listener until SIGTERM/SIGINT; SIGHUP reloads the TLS files in place."""
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for listener in listeners:
            listener.server.should_exit = True

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop)
    # SIGHUP (systemctl reload) never stops the server: it reloads the TLS files, if any.
    loop.add_signal_handler(signal.SIGHUP, tls.reload, context, files, "hotdesk web")
    await asyncio.gather(*(lst.server.serve(sockets=[lst.sock]) for lst in listeners))


def run(wsgi_app: Any, web: WebConfig, listen: str, threads: int) -> int:
    """Serve ``wsgi_app`` as ``[web]`` says; returns the exit status."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until serve() handles it: never fatal
    files = tls.TlsFiles(web.tls_certfile, web.tls_keyfile)
    context = tls.server_context(files) if files.enabled else None
    tls.limit_asyncio_tls_buffers()
    tls.raise_open_files_limit(web.max_connections + 256)
    asgi = WSGIMiddleware(wsgi_app, workers=threads)
    listeners = [make_listener(asgi, web, bind(listen), context)]
    scheme = "https" if context else "http"
    log.info("hotdesk web listening on %s://%s/", scheme, listen)
    if web.redirect_listen:
        listeners.append(make_listener(asgi, web, bind(web.redirect_listen), None))
        log.info("hotdesk web redirecting http://%s/ to https", web.redirect_listen)
    asyncio.run(serve(listeners, context, files))
    return 0
