"""Scenario driver for the Asterisk adapter: FakeAsterisk -> FastAGI server -> core -> DB
-> outbox -> AMI sender -> FakeAMI, all real sockets on 127.0.0.1, one event loop thread."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from hotdesk.calls.service import HotdeskService
from hotdesk.runtime import Runtime
from hotdesk_agi.app import AgiApp, start_app
from tests.fakes.asterisk import FakeAMI, FakeAsterisk

T = TypeVar("T")

AMI_USER, AMI_SECRET = "hotdesk", "hotdesk-secret"


@dataclass
class CallRecord:
    result: str | None
    prompts: list[str]
    hung_up: bool
    commands: list[str] = dataclasses.field(default_factory=list)


def unique_prompts(prompts: dict[str, str]) -> dict[str, str]:
    """Where two logical prompts share a sound file, give the later ones their own file
    name, so what the fake heard maps back to exactly one logical prompt."""
    seen: set[str] = set()
    out = {}
    for logical, sound in prompts.items():
        out[logical] = sound if sound not in seen else f"{sound}-{logical}"
        seen.add(sound)
    return out


def driver_runtime(runtime: Runtime, ami_port: int, secret: str = AMI_SECRET) -> Runtime:
    cfg = runtime.config
    cfg = dataclasses.replace(
        cfg,
        agi=dataclasses.replace(cfg.agi, listen="127.0.0.1:0", header_timeout=1.0,
                                command_timeout=5.0),
        ami=dataclasses.replace(cfg.ami, host="127.0.0.1", port=ami_port, username=AMI_USER,
                                secret=secret, reconnect_max_seconds=0.3),
        policy=dataclasses.replace(cfg.policy, pin_timeout_ms=100),
        notify=dataclasses.replace(cfg.notify, poll_seconds=0.2, call_grace_seconds=0.0),
        switch=dataclasses.replace(cfg.switch, type="asterisk"),
        prompts_asterisk=unique_prompts(cfg.prompts_asterisk),
    )
    return Runtime(config=cfg, db=runtime.db, service=HotdeskService(runtime.db, cfg))


class LoopThread:
    """An asyncio loop in a daemon thread; ``run`` executes a coroutine there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.run(self.loop.shutdown_default_executor(), 10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class Driver:
    name = "asterisk"

    def __init__(self, loop: LoopThread, runtime: Runtime, app: AgiApp, ami: FakeAMI) -> None:
        self.loop = loop
        self.runtime = runtime
        self.app = app
        self.ami = ami
        host, port = app.address
        self.asterisk = FakeAsterisk(host, port)
        self.sounds = {v: k for k, v in runtime.config.prompts("asterisk").items()}

    def call(self, feature: str, endpoint: str, extension: str = "", digits: Sequence[str] = (),
             source: str = "", hangup_at: str | None = None) -> CallRecord:
        if feature == "login":
            script, dialed, first = "login", f"*70{extension}", extension
        elif feature == "logout":
            script, dialed, first = "logout", "*71", ""
        else:
            raise ValueError(f"unknown feature {feature!r}")
        transcript = self.loop.run(self.asterisk.call(
            script, [first, source, endpoint], endpoint, dialed, digits, hangup_at))
        prompts = []
        for command in transcript.commands:
            words = command.split()
            if command.startswith(("STREAM FILE ", "GET DATA ")) and len(words) > 2:
                prompts.append(self.sounds.get(words[2], words[2]))
        return CallRecord(result=transcript.variables.get("HOTDESK_RESULT"), prompts=prompts,
                          hung_up=transcript.closed_by_server, commands=transcript.commands)

    def stop_switch_control(self) -> None:
        """Asterisk's AMI goes away without a word (listener closed, sessions dropped)."""
        self.loop.run(self.ami.stop())

    def start_switch_control(self) -> None:
        """AMI is back on the same port; the client reconnects on its own."""
        self.loop.run(self.ami.start(port=self.ami.port))

    def control_connected(self) -> bool:
        client = self.app.client
        return client is not None and client.connected.is_set()

    def notifies(self, count: int, timeout: float = 5.0) -> list[tuple[str, str, str]]:
        deadline = time.monotonic() + timeout
        while len(self.ami.notifies) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        out = []
        for n in list(self.ami.notifies):
            user = n.endpoint or n.uri.removeprefix("sip:").split("@", 1)[0]
            out.append((user, n.uri, n.event))
        return out


@contextlib.contextmanager
def make_driver(runtime: Runtime, tmp_path: Path, ami_secret: str = AMI_SECRET,
                ami_endpoints: set[str] | None = None) -> Iterator[Driver]:
    loop = LoopThread()
    ami = FakeAMI(username=AMI_USER, secret=AMI_SECRET, endpoints=ami_endpoints)
    app = None
    try:
        ami_port = loop.run(ami.start())
        rt = driver_runtime(runtime, ami_port, ami_secret)
        app = loop.run(start_app(rt, ami_min_backoff=0.05))
        yield Driver(loop, rt, app, ami)
    finally:
        if app is not None:
            loop.run(app.close())
        loop.run(ami.stop())
        loop.stop()

