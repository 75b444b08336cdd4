"""The audit trail: one row per thing that happened, written inside the change's transaction."""

from __future__ import annotations

import json
from typing import Any

from hotdesk.store.models import AuditEvent, Device, Tenant, User, utcnow


def record(action: str, *, tenant: Tenant | int | None = None, actor: str = "system",
           device: Device | int | None = None, user: User | int | None = None,
           call_id: str = "", **detail: Any) -> AuditEvent:
    """Write an audit row. ``detail`` must never carry a PIN or a SIP password."""
    return AuditEvent.create(
        tenant=tenant, actor=actor, action=action, device=device, user=user,
        call_id=call_id, at=utcnow(),
        detail=json.dumps(detail, sort_keys=True, default=str) if detail else "",
    )
