"""The ``hotdesk agi`` process: FastAGI server + AMI client + NOTIFY drain loop."""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import Executor
from dataclasses import dataclass

from hotdesk.notify.drain import Drainer
from hotdesk.ops.health import ConnectionReporter
from hotdesk.runtime import Runtime
from hotdesk.settings import parse_listen
from hotdesk_agi import emergency
from hotdesk_agi.ami import AmiClient, AmiNotifySender
from hotdesk_agi.registrations import AmiRegistrationWatcher, start_watcher
from hotdesk_agi.server import AgiServer

log = logging.getLogger(__name__)


async def drain_loop(runtime: Runtime, client: AmiClient, wake: asyncio.Event,
                     stop: asyncio.Event, executor: Executor | None = None) -> None:
    """Send due outbox rows whenever woken (a call changed something, AMI came back)
    or every ``[notify] poll_seconds``. While AMI is down nothing is claimed, so rows
    stay pending with no attempt used, and go out after the reconnect. The rounds
    themselves are the core's (:class:`hotdesk.notify.drain.Drainer`), run in a DB thread."""
    drainer = Drainer(AmiNotifySender(client, asyncio.get_running_loop()), runtime.config)
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        try:
            await asyncio.wait_for(wake.wait(), runtime.config.notify.poll_seconds)
        except TimeoutError:
            pass
        wake.clear()
        while client.connected.is_set() and not stop.is_set():
            counts = await loop.run_in_executor(executor, drainer.round)
            if counts is None or not drainer.busy(counts):
                break


@dataclass
class AgiApp:
    server: AgiServer
    client: AmiClient | None
    address: tuple[str, int]
    wake: asyncio.Event
    stop: asyncio.Event
    tasks: list[asyncio.Task[None]]
    health: ConnectionReporter | None = None
    registrations: AmiRegistrationWatcher | None = None
    watch: AmiClient | None = None

    async def close(self) -> None:
        self.stop.set()
        self.wake.set()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.close()
        for client in (self.client, self.watch):
            if client is not None:
                await client.close()
        if self.registrations is not None:
            await self.registrations.close()
        if self.health is not None:
            await asyncio.to_thread(self.health.stop)


async def start_app(runtime: Runtime, listen: str | None = None,
                    ami_min_backoff: float = 0.5, reuse_port: bool = False) -> AgiApp:
    """Start everything on the running loop; ``listen`` overrides ``[agi] listen``."""
    wake = asyncio.Event()
    stop = asyncio.Event()
    server = AgiServer(runtime, on_decided=wake.set)
    host, port = parse_listen(listen or runtime.config.agi.listen)
    address = await server.start(host, port, reuse_port)
    client = watch = None
    health = None
    watcher = None
    tasks: list[asyncio.Task[None]] = []
    if runtime.config.switch.type == "asterisk":
        client = AmiClient(runtime.config.ami, min_backoff=ami_min_backoff)
        health = ConnectionReporter("ami", client.address, node=runtime.config.metrics.node)
        health.start()
        client.on_connected = wake.set
        client.on_state = health.set
        client.start()
        tasks.append(asyncio.create_task(drain_loop(runtime, client, wake, stop,
                                                    server.executor)))
        watcher = start_watcher(runtime.config, ami_min_backoff)
        tasks.append(asyncio.create_task(emergency.drain_loop(
            client, wake, stop, runtime.config.notify.poll_seconds, server.executor)))
        if runtime.config.emergency.watch:
            watch = emergency.start_watch(runtime, ami_min_backoff, server.executor)
    else:
        log.info("[switch] type is %s: this process sends no NOTIFYs",
                 runtime.config.switch.type)
    return AgiApp(server, client, address, wake, stop, tasks, health, watcher, watch)


async def serve_forever(runtime: Runtime, reuse_port: bool = False) -> None:
    """Run until SIGTERM/SIGINT; calls in progress are cancelled, queued NOTIFYs stay."""
    app = await start_app(runtime, reuse_port=reuse_port)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    try:
        await done.wait()
        log.info("stopping")
    finally:
        await app.close()
