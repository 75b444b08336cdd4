"""Scenario driver for FreeSWITCH: the real ESL server and inbound link against the fake switch.

Prompts are configured with one distinct file per logical name so every file heard
maps back to exactly one name (the real defaults share files, e.g. access_denied).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from esl_handlers.service import EslService
from hotdesk.calls.service import HotdeskService
from hotdesk.runtime import Runtime
from hotdesk.settings import Config, EslConfig, NotifyConfig, PolicyConfig, SwitchConfig
from tests.fakes.freeswitch import CallSpec, FakeCall, FakeInboundServer, place_call


@dataclass
class CallRecord:
    result: str | None
    prompts: list[str]
    hung_up: bool


def driver_config(config: Config, inbound: tuple[str, int], poll_seconds: float = 0.05,
                  **esl: str) -> Config:
    prompts = {name: f"hotdesk/{name}.wav" for name in config.prompts_freeswitch}
    return dataclasses.replace(
        config,
        switch=SwitchConfig(type="freeswitch"),
        esl=dataclasses.replace(EslConfig(), listen="127.0.0.1:0", host=inbound[0],
                                port=inbound[1], reconnect_max_seconds=0.5, **esl),
        notify=dataclasses.replace(NotifyConfig(), poll_seconds=poll_seconds,
                                   call_grace_seconds=0.0,
                                   backoff_seconds=0.05,
                                   backoff_max_seconds=0.2),
        policy=dataclasses.replace(config.policy, pin_timeout_ms=200)
        if isinstance(config.policy, PolicyConfig) else config.policy,
        prompts_freeswitch=prompts,
    )


class Driver:
    name = "freeswitch"

    def __init__(self, service: EslService, fake: FakeInboundServer) -> None:
        self.service = service
        self.fake = fake
        self.prompt_names = {v: k for k, v in service.runtime.config.prompts_freeswitch.items()}
        self.last: FakeCall | None = None
        self.voicemail: dict[str, str] | None = None  # user@domain -> vm-password

    def call(self, feature: str, endpoint: str, extension: str = "", digits: Sequence[str] = (),
             source: str = "", hangup_at: str | None = None,
             domain: str = "127.0.0.1") -> CallRecord:
        spec = CallSpec(endpoint=endpoint, extension=extension if feature == "login" else "",
                        action=feature, digits=list(digits), hangup_at=hangup_at,
                        source=source or "127.0.0.1:5072", domain=domain,
                        vm_passwords=self.voicemail)
        served = self.service.server.calls_served
        call = place_call(self.service.server.address, spec)
        self.last = call
        deadline = time.monotonic() + 10
        while self.service.server.calls_served <= served and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.record(call)

    def record(self, call: FakeCall) -> CallRecord:
        result = None
        prompts: list[str] = []
        for app, arg in call.executed():
            if app == "set" and arg.startswith("HOTDESK_RESULT="):
                result = arg.split("=", 1)[1]
            elif app == "playback":
                prompts.append(self.prompt_names.get(arg, arg))
            elif app == "play_and_get_digits":
                file = arg.split(" ")[5]
                prompts.append(self.prompt_names.get(file, file))
        sent = [c for c, _ in call.commands]
        hung_up = ("exit" in sent or any(app == "hangup" for app, _ in call.executed())
                   or call.spec.hangup_at == "disconnect")
        return CallRecord(result=result, prompts=prompts, hung_up=hung_up)

    def stop_switch_control(self) -> None:
        """FreeSWITCH's inbound event socket goes away (listener closed, sessions dropped)."""
        self.fake.stop()

    def start_switch_control(self) -> None:
        """The event socket is back on the same port; the client reconnects on its own."""
        self.fake.start()

    def control_connected(self) -> bool:
        return self.service.inbound.connected

    def notifies(self, count: int, timeout: float = 5.0) -> list[tuple[str, str, str]]:
        out = []
        for headers in self.fake.wait_notifies(count, timeout):
            h = dict(headers)
            user = h.get("user") or h.get("to-uri", "").removeprefix("sip:").split("@")[0]
            out.append((user, h.get("contact-uri", ""), h.get("event-string", "")))
        return out


@contextlib.contextmanager
def make_driver(runtime: Runtime, tmp_path: Path, poll_seconds: float = 0.05,
                **esl: str) -> Iterator[Driver]:
    fake = FakeInboundServer()
    fake.start()
    cfg = driver_config(runtime.config, fake.address, poll_seconds, **esl)
    rt = Runtime(config=cfg, db=runtime.db, service=HotdeskService(runtime.db, cfg))
    service = EslService(rt)
    service.start()
    try:
        if "password" not in esl:
            service.inbound.wait_connected(5.0)
        yield Driver(service, fake)
    finally:
        service.stop()
        fake.stop()
