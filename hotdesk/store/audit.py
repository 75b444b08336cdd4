"""The audit trail: one row per thing that happened, written inside the change's transaction."""

from __future__ import annotations

import json
from typing import Any

from peewee import Model

from hotdesk.store.compiled import Compiled, inserted_id
from hotdesk.store.db import current_database
from hotdesk.store.models import AuditEvent, Device, Tenant, User, utcnow

# Written by every state change, so compiled once (hotdesk.store.compiled).
INSERT = Compiled(
    lambda tenant, actor, action, device, user, call_id, at, detail: AuditEvent.insert(
        tenant=tenant, actor=actor, action=action, device=device, user=user,
        call_id=call_id, at=at, detail=detail),
    tenant=AuditEvent.tenant, actor=AuditEvent.actor, action=AuditEvent.action,
    device=AuditEvent.device, user=AuditEvent.user, call_id=AuditEvent.call_id,
    at=AuditEvent.at, detail=AuditEvent.detail)


def _id(value: Model | int | None) -> int | None:
    return value.id if isinstance(value, Model) else value  # type: ignore[attr-defined]


def row(action: str, *, tenant: Tenant | int | None = None, actor: str = "system",
        device: Device | int | None = None, user: User | int | None = None,
        call_id: str = "", **detail: Any) -> dict[str, Any]:
    """The values of an audit row for :data:`INSERT`. ``detail`` must never carry a PIN
    or a SIP password."""
    return dict(tenant=_id(tenant), actor=actor, action=action, device=_id(device),
                user=_id(user), call_id=call_id, at=utcnow(),
                detail=json.dumps(detail, sort_keys=True, default=str) if detail else "")


def record(action: str, *, tenant: Tenant | int | None = None, actor: str = "system",
           device: Device | int | None = None, user: User | int | None = None,
           call_id: str = "", **detail: Any) -> int:
    """Write an audit row; returns its id. ``detail`` must never carry a PIN or a SIP
    password."""
    db = current_database()
    cursor = INSERT.run(db, **row(action, tenant=tenant, actor=actor, device=device,
                                  user=user, call_id=call_id, **detail))
    return inserted_id(db, cursor)
