"""The FastAGI server: one asyncio task per call, routed on the script name.

Our own small server rather than panoramisk's ``fast_agi.Application`` because its
handler loops on ``reader.read()`` until it sees a blank line: a client that closes
mid-header makes that loop spin forever at 100 % CPU (``read()`` keeps returning
b""), a silent client pins it forever (no timeout), and the header buffer has no
size limit. Its ``send_command`` also reads exactly one line per reply, so an async
``HANGUP`` line or a multi-line ``520`` usage reply desynchronises every later reply,
and it routes on the full ``agi_network_script`` (``login?ext=101`` finds no route).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from hotdesk.calls.callflow import SetVar, error_call
from hotdesk.calls.driver import CallDriver, Finished, Step
from hotdesk.logctx import call_context
from hotdesk.ops import metrics
from hotdesk.runtime import Runtime
from hotdesk.store.db import DbExecutor
from hotdesk_agi import login, logout
from hotdesk_agi.handlers import AgiRequest, Handler
from hotdesk_agi.protocol import MAX_LINE, AgiProtocolError, LineReader, read_env
from hotdesk_agi.runner import AgiSession, run_script, thread_runner

log = logging.getLogger(__name__)

HANDLERS: Mapping[str, Handler] = {"login": login.handle, "logout": logout.handle}


class AgiServer:
    """Serves FastAGI on ``host:port``. ``on_decided`` runs when a call's outcome is
    committed (the script sets HOTDESK_RESULT): the NOTIFY drain loop uses it to send
    the fresh outbox row at once instead of at its next poll."""

    def __init__(self, runtime: Runtime, handlers: Mapping[str, Handler] = HANDLERS,
                 on_decided: Callable[[], None] | None = None) -> None:
        self.runtime = runtime
        self.handlers = dict(handlers)
        # Few threads: SQLite has one writer anyway, and each thread keeps its own
        # database connection (and page cache) for its whole life; on PostgreSQL each
        # step gives its connection back to the pool.
        self.executor = DbExecutor(runtime.db, runtime.config.agi.db_threads, "agi-db")
        self.on_decided = on_decided or (lambda: None)
        self.server: asyncio.AbstractServer | None = None
        self.calls_served = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int, reuse_port: bool = False) -> tuple[str, int]:
        """``reuse_port``: several ``hotdesk agi`` processes share the port (``--workers``);
        the kernel spreads the connections over them."""
        self.server = await asyncio.start_server(self._accept, host, port, limit=MAX_LINE,
                                                 reuse_port=reuse_port or None)
        sock_host, sock_port = self.server.sockets[0].getsockname()[:2]
        log.info("FastAGI listening on %s:%d", sock_host, sock_port)
        return sock_host, sock_port

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        # Wait for the workers so their database connections close with them.
        await asyncio.to_thread(self.executor.shutdown, True, cancel_futures=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        peer = writer.get_extra_info("peername")
        try:
            await self.serve(reader, writer)
        except Exception:
            log.exception("FastAGI session from %s failed", peer)
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            try:
                # asyncio.timeout, not wait_for: wait_for wraps the wait in a new Task.
                async with asyncio.timeout(2):
                    await writer.wait_closed()
            except (TimeoutError, OSError):
                pass

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        cfg = self.runtime.config.agi
        lines = LineReader(reader)
        peer = writer.get_extra_info("peername")
        try:
            env = await read_env(lines, cfg.header_timeout)
        except AgiProtocolError as exc:
            log.warning("FastAGI client %s dropped: %s", peer, exc)
            return
        request = AgiRequest(env)
        with call_context(request.call_id):
            ctx = request.call_context()
            handler = self.handlers.get(request.script)
            if handler is None:
                log.error("FastAGI request for unknown script %r (agi_request %r)",
                          request.script, env.get("agi_request", ""))
                script = error_call(self.runtime.config.prompts("asterisk"))
            else:
                log.info("FastAGI %s from %s: args %s, channel %s", request.script,
                         request.arg(2) or peer, request.args, env.get("agi_channel", ""))
                script = handler(self.runtime, request)
            feature = request.script if handler is not None else "unknown"
            driver = CallDriver(script, self.runtime.service, ctx, feature, metrics.CALLS_SEEN)
            session = AgiSession(lines, writer, cfg.command_timeout)

            woken = False

            def decided(step: Step) -> None:
                # Once per call: the result variable follows every committed decision;
                # a call that ends without it (hung up early) still wakes at its end.
                nonlocal woken
                if isinstance(step, Finished | SetVar) and not woken:
                    woken = True
                    self.on_decided()

            outcome = await run_script(session, driver, thread_runner(self.executor), decided)
            self.calls_served += 1
            log.info("FastAGI %s done: %s", request.script, outcome.value)
