"""What pages and API routes share beyond the core's use cases (hotdesk.admin.usecases):
the HTTP status of a refusal and the per-phone results of a check-sync push."""

from __future__ import annotations

from hotdesk.admin import reports, usecases
from hotdesk.admin.errors import HTTP_STATUS, InventoryError
from hotdesk.admin.pushes import Step
from hotdesk.runtime import Runtime
from hotdesk.store.models import Device, OutboxNotify

__all__ = ["Step", "error_status", "notify_rows", "push_many"]


def error_status(exc: InventoryError) -> int:
    """The HTTP status of a refused change, from its kind."""
    return HTTP_STATUS[exc.kind]


def push_many(rt: Runtime, devices: list[Device], actor: str) -> list[int]:
    return [row.id for row in usecases.push_checksync(rt, devices, actor)]


def notify_rows(ids: list[int], scope: reports.Scope) -> list[dict[str, object]]:
    """Per-phone results of a push, for polling; rows outside the scope are left out."""
    if not ids:
        return []
    query = reports.scoped(OutboxNotify.select().where(OutboxNotify.id.in_(ids[:1000])),
                           OutboxNotify, scope).order_by(OutboxNotify.id)
    out = []
    for row in query:
        result, why = reports.notify_result(row)
        device = Device.get_or_none(Device.id == row.device_id)
        out.append({"id": row.id, "device_id": row.device_id,
                    "phone": (device.display_name or device.idle_extension) if device else "",
                    "mac": device.mac if device else "", "endpoint": row.endpoint,
                    "status": row.status, "result": result, "detail": why,
                    "attempts": row.attempts,
                    "sent_at": row.sent_at.isoformat(timespec="seconds") if row.sent_at
                    else None})
    return out
