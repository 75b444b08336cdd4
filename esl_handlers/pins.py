"""``[esl] pin_source = directory``: the user's voicemail password, read live from FreeSWITCH.

The PIN is compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
import logging

from esl_handlers.inbound import EslError, InboundConnection
from hotdesk.calls.service import CallContext, PinVerifier
from hotdesk.store.models import User

log = logging.getLogger(__name__)


def directory_pin(inbound: InboundConnection, user_id: str, domain: str) -> str:
    """``vm-password`` of user@domain, or "" when the directory has none."""
    try:
        return inbound.api(f"user_data {user_id}@{domain} param vm-password", timeout=3.0)
    except EslError:
        return ""  # "-ERR no reply": the user has no vm-password


def directory_verifier(inbound: InboundConnection, ctx: CallContext) -> PinVerifier:
    """A PinVerifier for one call; EslUnavailable propagates (the caller hears an error)."""
    def verify(user: User, pin: str) -> bool:
        domain = ctx.domain or user.tenant.sip_domain
        expected = directory_pin(inbound, user.extension, domain)
        if not expected:
            log.warning("user %s@%s has no vm-password in the FreeSWITCH directory",
                        user.extension, domain)
            return False
        return hmac.compare_digest(expected.encode(), pin.encode())
    return verify
