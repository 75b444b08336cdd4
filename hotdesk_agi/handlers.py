"""What a FastAGI request asks for: the parsed environment, handed to one handler."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from hotdesk.calls.callflow import CallScript
from hotdesk.calls.service import CallContext
from hotdesk.runtime import Runtime
from hotdesk_agi.protocol import args_of, script_name


@dataclass(frozen=True)
class AgiRequest:
    """The environment never changes after the block is read, so the script name and
    the argument list are worked out once (the handler and the log lines ask often)."""

    env: dict[str, str]

    @cached_property
    def script(self) -> str:
        return script_name(self.env)

    @cached_property
    def args(self) -> list[str]:
        return args_of(self.env)

    @property
    def call_id(self) -> str:
        return self.env.get("agi_uniqueid", "")

    def arg(self, n: int) -> str:
        args = self.args
        return args[n - 1].strip() if len(args) >= n else ""

    def call_context(self) -> CallContext:
        """Dialplan args: 1 = extension, 2 = phone ip:port, 3 = PJSIP endpoint name,
        4 = the tenant's SIP domain (empty: the default tenant). Without arg 3 the
        caller id number is the best guess of the endpoint."""
        endpoint = self.arg(3) or self.env.get("agi_callerid", "").strip()
        if endpoint == "unknown":
            endpoint = ""
        return CallContext(switch="asterisk", call_id=self.call_id, endpoint=endpoint,
                           source=self.arg(2), domain=self.arg(4))


Handler = Callable[[Runtime, AgiRequest], CallScript]

