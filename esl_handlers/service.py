"""Everything ``hotdesk esl`` runs, wired from one Runtime: call server, inbound link, drain."""

from __future__ import annotations

import logging

from esl_handlers import emergency
from esl_handlers.inbound import InboundConnection
from esl_handlers.notify import DrainLoop, EslNotifySender
from esl_handlers.outbound import EslServer
from esl_handlers.registrations import EslRegistrationWatcher, start_watcher
from hotdesk.ops.reporters import ConnectionReporter
from hotdesk.runtime import Runtime

log = logging.getLogger(__name__)


class EslService:
    def __init__(self, runtime: Runtime, listen: str | None = None,
                 reuse_port: bool = False) -> None:
        cfg = runtime.config
        self.runtime = runtime
        self.health = ConnectionReporter("esl-inbound", f"{cfg.esl.host}:{cfg.esl.port}",
                                         node=cfg.metrics.node)
        self.inbound = InboundConnection(cfg.esl.host, cfg.esl.port, cfg.esl.password,
                                         reconnect_max=cfg.esl.reconnect_max_seconds,
                                         on_state=self._on_state)
        self.sender = EslNotifySender(self.inbound, cfg.esl.profile)
        self.drain: DrainLoop | None = None
        self.emergency: emergency.DrainLoop | None = None
        self.watch: emergency.Watch | None = None
        if cfg.switch.type == "freeswitch":
            self.drain = DrainLoop(self.sender, cfg)
            self.emergency = emergency.DrainLoop(self.inbound, cfg.notify.poll_seconds)
            if cfg.emergency.watch:
                self.watch = emergency.Watch(runtime)
        self.server = EslServer(runtime, listen, reuse_port=reuse_port,
                                on_decided=self._decided)
        self.registrations: EslRegistrationWatcher | None = None

    def _on_state(self, up: bool, detail: str) -> None:
        self.health.set(up, detail)
        if up and self.drain is not None:
            self.drain.wake()  # NOTIFYs queued while FreeSWITCH was away go out now
        if up and self.emergency is not None:
            self.emergency.wake()

    def _decided(self) -> None:
        """A call committed its outcome: its NOTIFY and emergency entries go out now, not
        at the drains' next poll."""
        for part in (self.drain, self.emergency):
            if part is not None:
                part.wake()

    def start(self) -> None:
        self.health.start()
        self.inbound.start()
        self.server.start()
        for part in (self.emergency, self.watch):
            if part is not None:
                part.start()
        if self.drain is not None:
            self.drain.start()
            self.registrations = start_watcher(self.runtime.config)
        else:
            log.info("[switch] type is not freeswitch: this process sends no NOTIFYs")

    def stop(self) -> None:
        self.server.stop()
        if self.drain is not None:
            self.drain.stop()
        if self.registrations is not None:
            self.registrations.stop()
        for part in (self.emergency, self.watch):
            if part is not None:
                part.stop()
        self.inbound.stop()
        self.health.stop()
