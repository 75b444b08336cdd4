"""``login``: *70<extension> — identify the phone, take the PIN, log the user in."""

from __future__ import annotations

from hotdesk.calls.callflow import CallScript, login_call
from hotdesk.runtime import Runtime
from hotdesk_agi.handlers import AgiRequest


def handle(runtime: Runtime, request: AgiRequest) -> CallScript:
    return login_call(request.call_context(), request.arg(1),
                      runtime.config.prompts("asterisk"), runtime.config.policy)
