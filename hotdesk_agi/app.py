"""The ``hotdesk agi`` process: FastAGI server + AMI client + NOTIFY drain loop."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

from hotdesk.notify.drain import Drainer, drain_stall_seconds
from hotdesk.ops.reporters import ConnectionReporter
from hotdesk.ops.supervise import LoopMonitor, run_supervised_async
from hotdesk.runtime import Runtime
from hotdesk.settings import parse_listen
from hotdesk.store.db import DbExecutor
from hotdesk_agi import emergency
from hotdesk_agi.ami import AmiClient, AmiNotifySender
from hotdesk_agi.registrations import AmiRegistrationWatcher, start_watcher
from hotdesk_agi.server import AgiServer

log = logging.getLogger(__name__)


async def drain_loop(runtime: Runtime, client: AmiClient, wake: asyncio.Event,
                     stop: asyncio.Event, executor: Executor | None = None,
                     on_round: Callable[[], None] = lambda: None) -> None:
    """Send due outbox rows whenever woken (a call changed something, AMI came back)
    or every ``[notify] poll_seconds``. While AMI is down nothing is claimed, so rows
    stay pending with no attempt used, and go out after the reconnect. The rounds
    themselves are the core's (:class:`hotdesk.notify.drain.Drainer`), run in a DB thread.
    ``on_round`` is told each time the loop comes round (the supervisor's heartbeat)."""
    drainer = Drainer(AmiNotifySender(client, asyncio.get_running_loop()), runtime.config)
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        try:
            # asyncio.timeout, not wait_for: wait_for wraps the wait in a new Task.
            async with asyncio.timeout(runtime.config.notify.poll_seconds):
                await wake.wait()
        except TimeoutError:
            pass
        wake.clear()
        on_round()
        while client.connected.is_set() and not stop.is_set():
            counts = await loop.run_in_executor(executor, drainer.round)
            on_round()
            if counts is None or not drainer.busy(counts):
                break


@dataclass
class AgiApp:
    server: AgiServer
    client: AmiClient | None
    address: tuple[str, int]
    wake: asyncio.Event
    emergency_wake: asyncio.Event
    stop: asyncio.Event
    tasks: list[asyncio.Task[None]]
    health: ConnectionReporter | None = None
    monitors: list[LoopMonitor] = field(default_factory=list)
    drain_executor: Executor | None = None
    registrations: AmiRegistrationWatcher | None = None
    watch: AmiClient | None = None

    async def close(self) -> None:
        self.stop.set()
        self.wake.set()
        self.emergency_wake.set()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.close()
        if self.drain_executor is not None:
            await asyncio.to_thread(self.drain_executor.shutdown, True)
        for client in (self.client, self.watch):
            if client is not None:
                await client.close()
        if self.registrations is not None:
            await self.registrations.close()
        if self.health is not None:
            await asyncio.to_thread(self.health.stop)
        for monitor in self.monitors:
            await asyncio.to_thread(monitor.stop)


async def start_app(runtime: Runtime, listen: str | None = None,
                    ami_min_backoff: float = 0.5, reuse_port: bool = False) -> AgiApp:
    """Start everything on the running loop; ``listen`` overrides ``[agi] listen``."""
    # One event per drain loop: a shared one is cleared by whichever loop wakes first,
    # and a loop that was busy at that moment then sleeps a whole poll with work queued.
    wake = asyncio.Event()
    emergency_wake = asyncio.Event()
    stop = asyncio.Event()

    def woken() -> None:
        wake.set()
        emergency_wake.set()

    server = AgiServer(runtime, on_decided=woken)
    host, port = parse_listen(listen or runtime.config.agi.listen)
    address = await server.start(host, port, reuse_port)
    client = watch = None
    health = None
    watcher = None
    tasks: list[asyncio.Task[None]] = []
    monitors: list[LoopMonitor] = []
    drain_executor = None
    if runtime.config.switch.type == "asterisk":
        client = AmiClient(runtime.config.ami, min_backoff=ami_min_backoff)
        health = ConnectionReporter("ami", client.address, node=runtime.config.metrics.node)
        health.start()
        client.on_connected = woken
        client.on_state = health.set
        client.start()
        monitor = LoopMonitor("agi-drain", node=runtime.config.metrics.node,
                              stall_seconds=drain_stall_seconds(runtime.config))
        monitor.start()
        monitors.append(monitor)
        # A thread of its own: a round waits on AMI replies, and must not hold one of
        # the threads the calls' database steps run in while it does.
        drain_executor = DbExecutor(runtime.db, 1, "agi-drain")
        tasks.append(asyncio.create_task(run_supervised_async(
            monitor, lambda: drain_loop(runtime, client, wake, stop, drain_executor,
                                        monitor.beat), stop)))
        watcher = start_watcher(runtime.config, ami_min_backoff)
        tasks.append(asyncio.create_task(emergency.drain_loop(
            client, emergency_wake, stop, runtime.config.notify.poll_seconds, server.executor)))
        if runtime.config.emergency.watch:
            watch = emergency.start_watch(runtime, ami_min_backoff, server.executor)
    else:
        log.info("[switch] type is %s: this process sends no NOTIFYs",
                 runtime.config.switch.type)
    return AgiApp(server, client, address, wake, emergency_wake, stop, tasks, health, monitors,
                  drain_executor, registrations=watcher, watch=watch)


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
