"""``logout``: *71 — put the calling phone back to its idle extension."""

from __future__ import annotations

from hotdesk.calls.callflow import CallScript, logout_call
from hotdesk.runtime import Runtime
from hotdesk_agi.handlers import AgiRequest


def handle(runtime: Runtime, request: AgiRequest) -> CallScript:
    return logout_call(request.call_context(), runtime.config.prompts("asterisk"))
