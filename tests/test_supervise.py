"""Background loops are supervised: an unexpected error is logged, the loop restarts with
backoff, and its own heartbeat says so (``hotdesk status``, the dashboard).

Each test makes one step of a real loop raise a non-database exception and checks the
loop keeps doing its job afterwards.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading

import pytest

from esl_handlers.inbound import InboundConnection
from hotdesk.notify import outbox, reconcile
from hotdesk.ops import health, status, worker
from hotdesk.ops.supervise import Backoff, LoopMonitor, run_supervised_async
from hotdesk.settings import AmiConfig, WorkerConfig
from hotdesk.store.models import OutboxNotify
from hotdesk_agi.ami import AmiClient
from tests.fakes.asterisk import FakeAMI
from tests.fakes.freeswitch import FakeInboundServer
from tests.test_wiring import SWITCHES, beat, make_driver, wait_for

A = "127.0.0.1:5071"
DRAIN = {"asterisk": "agi-drain", "freeswitch": "esl-drain"}


class FailFirst:
    """Wraps a function: the first ``n`` calls raise ``exc``, the rest run it."""

    def __init__(self, fn, n: int, exc: Exception) -> None:  # type: ignore[no-untyped-def]
        self.fn, self.left, self.exc = fn, n, exc
        self.lock = threading.Lock()

    def __call__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        with self.lock:
            if self.left > 0:
                self.left -= 1
                raise self.exc
        return self.fn(*args, **kwargs)


@pytest.mark.parametrize("switch", SWITCHES)
def test_drain_loop_survives_a_failing_round_and_reports_it(runtime, alice, desk, tmp_path,
                                                            switch, monkeypatch, caplog):
    monkeypatch.setattr(outbox, "drain_once",
                        FailFirst(outbox.drain_once, 2, RuntimeError("template exploded")))
    seen_down = []
    with make_driver(switch, runtime, tmp_path) as drv:
        assert wait_for(lambda: drv.control_connected())
        assert drv.call("login", "8001", "101", ("1234",), A).result == "ok"

        def failing_reported() -> bool:
            b = beat(DRAIN[switch])
            if b is not None and b.state == "down":
                seen_down.append(b.detail)
            return bool(seen_down)

        assert wait_for(failing_reported), "the drain loop's heartbeat never showed the error"
        # The loop restarts and the NOTIFY still goes out.
        assert len(drv.notifies(1, timeout=15)) == 1
        assert wait_for(lambda: (b := beat(DRAIN[switch])) is not None and b.state == "up"
                        and "2 restart(s)" in b.detail, timeout=15)
    assert "RuntimeError: template exploded" in seen_down[0]
    assert OutboxNotify.get().status == "sent"
    assert any(r.exc_info and "template exploded" in str(r.exc_info[1])
               for r in caplog.records), "the traceback should be logged"


def test_worker_tick_failure_is_reported_and_the_worker_goes_on(runtime, alice, desk,
                                                                 monkeypatch):
    cfg = dataclasses.replace(runtime.config, worker=WorkerConfig(interval_seconds=0.05))
    monkeypatch.setattr(reconcile, "reconcile",
                        FailFirst(reconcile.reconcile, 1, KeyError("device_id")))
    states: list[tuple[str, str]] = []

    def on_tick(result: worker.TickResult) -> None:
        states.append((beat("worker").state, beat("worker").detail))  # type: ignore[union-attr]

    stop = threading.Event()
    ticks = worker.run_worker(runtime.service, cfg, stop, max_ticks=3, on_tick=on_tick)
    assert ticks == 3 and len(states) == 2  # the failed tick, then two good ones
    assert states[-1][0] == "up"


def test_worker_failure_shows_in_the_heartbeat(runtime, monkeypatch):
    cfg = dataclasses.replace(runtime.config, worker=WorkerConfig(interval_seconds=0.05))
    monkeypatch.setattr(reconcile, "reconcile",
                        FailFirst(reconcile.reconcile, 10**6, KeyError("device_id")))
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_worker, args=(runtime.service, cfg, stop))
    thread.start()
    try:
        assert wait_for(lambda: (b := beat("worker")) is not None and b.state == "down"
                        and "tick failed: KeyError: 'device_id'" in b.detail)
        assert "tick failed: KeyError" in status.render(status.collect())
        assert thread.is_alive()
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_supervised_coroutine_restarts_with_backoff_and_heartbeat(runtime, caplog):
    monitor = LoopMonitor("test-loop", backoff=Backoff(0.01, 0.04))
    monitor.start()
    runs = []

    async def loop() -> None:
        runs.append(len(runs))
        if len(runs) <= 3:
            raise ValueError(f"bad row {len(runs)}")
        monitor.beat()
        stop.set()

    stop = asyncio.Event()
    asyncio.run(asyncio.wait_for(run_supervised_async(monitor, loop, stop), 10))
    assert runs == [0, 1, 2, 3]
    assert monitor.snapshot() == ("up", "running; 3 restart(s), last: ValueError: bad row 3")
    assert wait_for(lambda: (b := beat("test-loop")) is not None and b.state == "up"
                    and "3 restart(s)" in b.detail)
    monitor.stop()
    assert wait_for(lambda: beat("test-loop").state == "down")  # type: ignore[union-attr]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert len(errors) == 3


def test_stalled_loop_is_reported_down():
    now = [100.0]
    monitor = LoopMonitor("stuck", stall_seconds=30, clock=lambda: now[0])
    assert monitor.snapshot() == ("up", "running")
    now[0] += 31
    assert monitor.snapshot() == ("down", "no round for 31s (stuck?)")
    monitor.beat()
    assert monitor.snapshot()[0] == "up"


def test_esl_connection_loop_survives_an_unexpected_error(monkeypatch):
    fake = FakeInboundServer()
    fake.start()
    states: list[tuple[bool, str]] = []
    flaky = FailFirst(InboundConnection._read_loop, 1, KeyError("Content-Type"))
    monkeypatch.setattr(InboundConnection, "_read_loop", lambda self, reader: flaky(self, reader))
    conn = InboundConnection(*fake.address, "ClueCon", backoff_start=0.05,
                             on_state=lambda up, detail: states.append((up, detail)))
    conn.start()
    try:
        assert wait_for(lambda: len([s for s in states if s[0]]) >= 2), states
        assert conn.connected
    finally:
        conn.stop()
        fake.stop()
    assert (False, "internal error: KeyError: 'Content-Type'") in states


def test_ami_connection_loop_survives_an_unexpected_error():
    async def run() -> list[tuple[bool, str]]:
        fake = FakeAMI()
        port = await fake.start()
        client = AmiClient(AmiConfig(host="127.0.0.1", port=port, username="hotdesk",
                                     secret="hotdesk-secret"), min_backoff=0.05)
        states: list[tuple[bool, str]] = []
        client.on_state = lambda up, detail: states.append((up, detail))
        client.on_connected = FailFirst(lambda: None, 1, AttributeError("no wake"))
        client.start()
        try:
            for _ in range(500):
                if len([s for s in states if s[0]]) >= 2 and client.connected.is_set():
                    break
                await asyncio.sleep(0.01)
        finally:
            await client.close()
            await fake.stop()
        return states

    states = asyncio.run(run())
    assert [up for up, _ in states][:3] == [True, False, True], states
    assert states[1][1] == "internal error: AttributeError: no wake"


def test_status_lists_every_loop(runtime):
    health.report("esl-drain", "down", "failed: RuntimeError: boom; restarting in 1s")
    text = status.render(status.collect())
    assert "esl-drain" in text and "RuntimeError: boom" in text


def test_pnp_listener_reopens_a_socket_that_went_away(runtime, monkeypatch):
    from hotdesk_pnp import listener as pnp

    made: list[pnp.PnpListener] = []

    class Recorded(pnp.PnpListener):
        def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(pnp, "PnpListener", Recorded)
    cfg = dataclasses.replace(runtime.config, pnp=dataclasses.replace(
        runtime.config.pnp, listen="127.0.0.1:0", multicast=False))
    monitor = LoopMonitor("pnp", backoff=Backoff(0.01, 0.05))

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(pnp.serve(cfg, runtime.db, stop, monitor))
        while not (made and made[0].unicast):
            await asyncio.sleep(0.01)
        made[0].unicast.transport.close()  # type: ignore[union-attr]  # the interface went away
        while not (len(made) == 2 and made[1].unicast):
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(asyncio.wait_for(run(), 10))
    assert monitor.restarts == 1 and "unicast socket closed" in monitor.last_error
    assert monitor.snapshot()[0] == "up"


def test_worker_once_still_fails_loudly(runtime, monkeypatch):
    """``hotdesk worker --once`` (cron) must exit non-zero when its one tick failed."""
    monkeypatch.setattr(reconcile, "reconcile",
                        FailFirst(reconcile.reconcile, 1, KeyError("device_id")))
    with pytest.raises(KeyError):
        worker.run_worker(runtime.service, runtime.config, threading.Event(), max_ticks=1)
    assert "tick failed: KeyError" in beat("worker").detail  # type: ignore[union-attr]
