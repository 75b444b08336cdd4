"""What pages and API routes both do after a change: thin sequences of core calls, kept in
one place so the two front ends cannot drift apart."""

from __future__ import annotations

from dataclasses import dataclass

from hotdesk.admin import reports
from hotdesk.runtime import Runtime
from hotdesk.store.models import Device, OutboxNotify
from webadmin import integrations


@dataclass(frozen=True)
class Step:
    name: str
    ok: bool | None
    message: str


def after_phone_saved(rt: Runtime, device: Device, actor: str) -> list[Step]:
    """Config regenerated + check-sync queued, then PnP push or RPS write; each reported."""
    steps: list[Step] = []
    if device.idle_managed:
        steps.append(switch_step(rt))
    row = queue_checksync(rt, device, actor)
    steps.append(Step("check-sync", True if row else False,
                      f"configuration v{device.config_version} generated; check-sync NOTIFY "
                      f"queued (#{row.id})" if row else "check-sync NOTIFY not queued"))
    if device.method == "pnp":
        r = integrations.push_provisioning_url(rt.config, device)
        steps.append(Step("pnp", r.ok, r.message))
    if device.method == "rps" or device.rps_enabled:
        r = integrations.save_to_rps(rt.config, device, actor)
        steps.append(Step("rps", r.ok, r.message))
    return steps


def switch_step(rt: Runtime) -> Step:
    """Apply the idle accounts to the switch now (or say who will, or why not)."""
    from hotdesk.switch.upkeep import apply_now

    ok, message = apply_now(rt.db, rt.config)
    return Step("switch", ok, message)


def queue_checksync(rt: Runtime, device: Device, actor: str) -> OutboxNotify | None:
    """Queue a check-sync through the core and return the outbox row it created."""
    before = (OutboxNotify.select(OutboxNotify.id).order_by(OutboxNotify.id.desc()).first())
    rt.service.reprovision(device.id, actor=actor)
    query = OutboxNotify.select().where(OutboxNotify.device == device)
    if before is not None:
        query = query.where(OutboxNotify.id > before.id)
    return query.order_by(OutboxNotify.id.desc()).first()


def push_many(rt: Runtime, devices: list[Device], actor: str) -> list[int]:
    return [row.id for d in devices if (row := queue_checksync(rt, d, actor)) is not None]


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
