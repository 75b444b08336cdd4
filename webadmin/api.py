"""REST API under /api/v1: bearer tokens per admin, the same tenant scope as the pages,
errors as ``{"error": "..."}``. The OpenAPI document (webadmin/openapi.py) describes it."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, g, jsonify, request
from werkzeug.wrappers import Response

from hotdesk.admin import admins, lists, reports, usecases, zones
from hotdesk.admin.inventory import DeviceSpec, InventoryError
from hotdesk.notify import campaigns, push_selection
from hotdesk.provisioning.render import device_url
from hotdesk.store.models import Device, DiscoveredPhone, Session, Tenant, User, utcnow
from hotdesk.switch import registrations
from webadmin import actions, paging
from webadmin.auth import (
    actor,
    discovered_visible,
    runtime,
    scope,
    scoped_or_404,
    tenant_choice,
)
from webadmin.openapi import openapi_document
from webadmin.pages import _date, _ids, _phone_key, offline_after
from webadmin.users import logged_in_map

bp = Blueprint("api", __name__, url_prefix="/api/v1")
bp_docs = Blueprint("api_docs", __name__, url_prefix="/api/v1")
MAX_ID = 2**31


@bp_docs.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document())


@bp.before_request
def authenticate() -> Response | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    admin = admins.admin_for_token(token.strip()) if scheme.lower() == "bearer" else None
    if admin is None:
        response = jsonify(error="missing or invalid bearer token")
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Bearer realm="hotdesk"'
        return response
    g.admin = admin
    return None


def body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        abort(400, "the request body must be a JSON object")
    _refuse_nul(data, "")
    return data


def _refuse_nul(value: Any, where: str) -> None:
    """A NUL anywhere in the JSON is a 400, as in forms: PostgreSQL text cannot hold one
    and SQLite would store it."""
    if isinstance(value, str):
        if "\x00" in value:
            abort(400, f"{where or 'value'}: NUL characters are not allowed")
    elif isinstance(value, dict):
        for key, item in value.items():
            name = str(key).replace("\x00", "")
            if "\x00" in str(key):
                abort(400, f"{name!r}: NUL characters are not allowed")
            _refuse_nul(item, name)
    elif isinstance(value, list):
        for item in value:
            _refuse_nul(item, where)


def text(data: dict[str, Any], key: str, default: str = "") -> str:
    value = data.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        abort(400, f"{key} must be a string")
    return str(value)


def flag(data: dict[str, Any], key: str, default: bool | None = None) -> bool | None:
    value = data.get(key, default)
    if value is not None and not isinstance(value, bool):
        abort(400, f"{key} must be true or false")
    return value


def tenant_from(data: dict[str, Any]) -> Tenant:
    raw = data.get("tenant_id")
    if raw is not None:
        if not isinstance(raw, int) or isinstance(raw, bool) or not 0 < raw < MAX_ID:
            abort(400, "tenant_id must be a positive integer")
        scoped_or_404(Tenant, raw)
        return tenant_choice(str(raw))
    return tenant_choice(None)


def phone_json(d: Device, status: reports.PhoneStatus | None = None,
               registration: registrations.RegistrationView | None = None) -> dict[str, Any]:
    status = status or reports.phone_statuses([d], offline_after())[d.id]
    registration = registration or registrations.view(d)
    return {
        "id": d.id, "tenant_id": d.tenant_id, "mac": d.mac, "vendor": d.vendor,
        "model": d.model, "name": d.display_name, "extension": d.idle_extension,
        "method": d.method, "network": d.network, "sbc": d.sbc_address, "rps": d.rps_enabled,
        "transport": d.sip_transport,
        "provisioning_url": device_url(runtime().config, d),
        "config_version": d.config_version, "fetched_version": d.fetched_version,
        "config_state": "fetched" if d.fetched_version >= d.config_version else "pending",
        "last_address": d.last_address, "state": status.state,
        "last_seen": iso(status.last_seen),
        "user": status.user.extension if status.user else None,
        "registration": registration_json(registration),
    }


def registration_json(v: registrations.RegistrationView) -> dict[str, Any]:
    """What the switch reports next to what hotdesk expects; ``ok`` false = look at it."""
    now = utcnow()
    return {"state": v.state, "label": v.label, "ok": v.ok, "expected_account": v.expected,
            "account": v.account or None, "address": v.address or None,
            "since": iso(v.since), "expires_at": iso(v.expires_at),
            "age_seconds": int((now - v.since).total_seconds()) if v.since else None,
            "failure_reason": v.failure_reason or None, "failure_at": iso(v.failure_at)}


def user_json(u: User, locked_until: Any = "?",
              phones: list[int] | None = None) -> dict[str, Any]:
    if phones is None:
        phones = [s.device_id for s in Session.select(Session.device)
                  .where((Session.user == u) & Session.ended_at.is_null())]
    if locked_until == "?":
        locked_until = usecases.locked_until(runtime(), u)
    return {"id": u.id, "tenant_id": u.tenant_id, "extension": u.extension,
            "name": u.display_name, "sip_username": u.sip_username,
            "hotdesk": u.hotdesk_enabled, "pin_set": bool(u.pin_hash),
            "language": u.language, "timezone": u.timezone, "logged_in_on": phones,
            "locked_until": iso(locked_until)}


def session_json(s: Session) -> dict[str, Any]:
    return {"id": s.id, "tenant_id": s.tenant_id, "phone_id": s.device_id,
            "user_id": s.user_id, "extension": s.user.extension,
            "since": iso(s.started_at), "expires": iso(s.expires_at)}


def iso(value: Any) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value else None


def steps_json(steps: list[actions.Step]) -> list[dict[str, Any]]:
    return [{"step": s.name, "ok": s.ok, "message": s.message} for s in steps]


def _error(exc: InventoryError) -> Response:
    response = jsonify(error=str(exc), kind=exc.kind.value)
    response.status_code = actions.error_status(exc)
    return response


# -- phones ---------------------------------------------------------------------------


@bp.get("/phones")
def phones_list() -> Response:
    sorts = lists.by_id(lists.PHONE_SORTS)
    page = lists.phones(scope(), paging.params(sorts, paging.API_PER_PAGE), sorts)
    devices = page.items
    statuses = reports.phone_statuses(devices, offline_after())
    views = registrations.views(devices)
    return paging.api_answer("phones", [phone_json(d, statuses[d.id], views[d.id])
                                        for d in devices], page)


def _spec(data: dict[str, Any], device: Device | None = None) -> DeviceSpec:
    def pick(key: str, current: str) -> str:
        return text(data, key, current)
    d = device
    method = pick("method", d.method if d else "pnp")
    rps = flag(data, "rps", d.rps_enabled if d else False)
    return DeviceSpec(mac=pick("mac", d.mac if d else ""),
                      extension=pick("extension", d.idle_extension if d else ""),
                      sip_password=pick("sip_password", d.idle_sip_password if d else ""),
                      vendor=pick("vendor", d.vendor if d else "yealink"),
                      model=pick("model", d.model if d else ""),
                      name=pick("name", d.display_name if d else ""), method=method,
                      network=pick("network", d.network if d else "lan"),
                      sbc=pick("sbc", d.sbc_address if d else ""),
                      rps=bool(rps) or method == "rps",
                      transport=pick("transport", d.sip_transport if d else ""))


@bp.post("/phones")
def phones_create() -> Response:
    data = body()
    tenant = tenant_from(data)
    try:
        result = usecases.add_phone(runtime(), tenant, _spec(data), actor=actor())
    except InventoryError as exc:
        return _error(exc)
    response = jsonify(phone=phone_json(result.device), steps=steps_json(result.steps))
    response.status_code = 201
    return response


@bp.get("/phones/<int:phone_id>")
def phones_get(phone_id: int) -> Response:
    return jsonify(phone=phone_json(scoped_or_404(Device, phone_id)))


@bp.put("/phones/<int:phone_id>")
def phones_update(phone_id: int) -> Response:
    device = scoped_or_404(Device, phone_id)
    data = body()
    try:
        result = usecases.change_phone(runtime(), device, _spec(data, device), actor=actor())
    except InventoryError as exc:
        return _error(exc)
    return jsonify(phone=phone_json(result.device), steps=steps_json(result.steps))


@bp.delete("/phones/<int:phone_id>")
def phones_delete(phone_id: int) -> Response:
    device = scoped_or_404(Device, phone_id)
    steps = usecases.remove_phone(runtime(), device, actor=actor())
    return jsonify(deleted=phone_id, steps=steps_json(steps))


@bp.post("/phones/<int:phone_id>/notify")
def phones_notify(phone_id: int) -> Response:
    device = scoped_or_404(Device, phone_id)
    ids = actions.push_many(runtime(), [device], actor())
    response = jsonify(notifies=actions.notify_rows(ids, scope()))
    response.status_code = 202
    return response


# -- users ----------------------------------------------------------------------------


@bp.get("/users")
def users_list() -> Response:
    sorts = lists.by_id(lists.USER_SORTS)
    page = lists.users(scope(), paging.params(sorts, paging.API_PER_PAGE), sorts)
    users = page.items
    locked = usecases.locked_users(runtime(), users)
    phones = logged_in_map(users)
    return paging.api_answer("users", [
        user_json(u, locked.get(u.id), [s.device_id for s in phones.get(u.id, [])])
        for u in users], page)


@bp.post("/users")
def users_create() -> Response:
    data = body()
    tenant = tenant_from(data)
    try:
        user = usecases.add_user(runtime(), tenant, text(data, "extension"),
                                 name=text(data, "name"), pin=text(data, "pin") or None,
                                 sip_password=text(data, "sip_password"),
                                 hotdesk=bool(flag(data, "hotdesk", False)), actor=actor()).user
    except InventoryError as exc:
        return _error(exc)
    response = jsonify(user=user_json(user))
    response.status_code = 201
    return response


@bp.get("/users/<int:user_id>")
def users_get(user_id: int) -> Response:
    return jsonify(user=user_json(scoped_or_404(User, user_id)))


@bp.put("/users/<int:user_id>")
def users_update(user_id: int) -> Response:
    user = scoped_or_404(User, user_id)
    data = body()
    try:
        result = usecases.change_user(
            runtime(), user, name=text(data, "name") if "name" in data else None,
            sip_password=text(data, "sip_password") or None, hotdesk=flag(data, "hotdesk"),
            pin=text(data, "pin") or None,
            language=text(data, "language") if "language" in data else None, actor=actor())
        if "timezone" in data:
            zones.set_user_timezone(runtime().db, runtime().service, user,
                                    text(data, "timezone"), actor=actor())
    except InventoryError as exc:
        return _error(exc)
    return jsonify(user=user_json(User.get_by_id(user.id)),
                   reprovisioned=sorted(set(result.phones)))


@bp.delete("/users/<int:user_id>")
def users_delete(user_id: int) -> Response:
    user = scoped_or_404(User, user_id)
    usecases.remove_user(runtime(), user, actor=actor())
    return jsonify(deleted=user_id)


@bp.put("/users/<int:user_id>/pin")
def users_pin(user_id: int) -> Response:
    user = scoped_or_404(User, user_id)
    try:
        result = usecases.set_pin(runtime(), user, text(body(), "pin"), actor=actor())
    except InventoryError as exc:
        return _error(exc)
    return jsonify(user=user_json(result.user))


@bp.put("/users/<int:user_id>/hotdesk")
def users_hotdesk(user_id: int) -> Response:
    user = scoped_or_404(User, user_id)
    enabled = flag(body(), "enabled")
    if enabled is None:
        abort(400, "enabled must be true or false")
    result = usecases.set_hotdesk(runtime(), user, enabled, actor=actor())
    return jsonify(user=user_json(result.user), reprovisioned=sorted(set(result.phones)))


@bp.post("/users/<int:user_id>/unlock")
def users_unlock(user_id: int) -> Response:
    user = scoped_or_404(User, user_id)
    result = usecases.unlock_user(runtime(), user, actor=actor())
    return jsonify(user=user_json(result.user))


# -- sessions, discovered phones, notify, audit -----------------------------------------


@bp.get("/sessions")
def sessions_list() -> Response:
    sorts = lists.by_id(lists.SESSION_SORTS)
    page = lists.sessions(scope(), paging.params(sorts, paging.API_PER_PAGE), sorts)
    return paging.api_answer("sessions", [session_json(s) for s in page.items], page)


@bp.delete("/sessions/<int:session_id>")
def sessions_logout(session_id: int) -> Response:
    s = scoped_or_404(Session, session_id)
    if s.ended_at is not None:
        abort(409, "the session has already ended")
    outcome = runtime().service.logout(s.device_id, reason="admin", actor=actor())
    return jsonify(result=outcome.value)


@bp.get("/discovered")
def discovered_list() -> Response:
    rows = [p for p in DiscoveredPhone.select().order_by(DiscoveredPhone.id)
            if discovered_visible(p)]
    return jsonify(discovered=[{
        "id": p.id, "mac": p.mac, "vendor": p.vendor, "model": p.model,
        "firmware": p.firmware, "address": p.address, "first_seen": iso(p.first_seen),
        "last_seen": iso(p.last_seen), "adopted": p.adopted} for p in rows])


@bp.post("/notify")
def notify_push() -> Response:
    """Check-sync now for a few phones; more than one second's worth at ``[notify]
    push_rate`` becomes a paced push (answered with its ``campaign``), so a tenant-wide
    push never makes thousands of phones fetch their config in the same second."""
    data = body()
    try:
        if "tenant_id" in data:
            ids = push_selection.phones_for(scope(), "tenant", tenant_id=tenant_from(data).id)
            kind = "tenant"
        else:
            wanted = data.get("phone_ids")
            if not isinstance(wanted, list) or not wanted or not all(
                    isinstance(i, int) and not isinstance(i, bool) and 0 < i < MAX_ID
                    for i in wanted):
                abort(400, "give phone_ids (a non-empty list of ids) or tenant_id")
            ids, kind = push_selection.phones_for(scope(), "selected", device_ids=wanted), \
                "selected"
        if len(ids) > runtime().config.notify.push_rate:
            campaign = campaigns.start(runtime().config, kind, ids, actor())
            response = jsonify(notifies=[], campaign=campaigns.progress(campaign).as_dict())
        else:
            chosen = list(Device.select().where(Device.id.in_(ids)).order_by(Device.id))
            pushed = actions.push_many(runtime(), chosen, actor())
            response = jsonify(notifies=actions.notify_rows(pushed, scope()))
    except InventoryError as exc:
        return _error(exc)
    response.status_code = 202
    return response


@bp.get("/notify")
def notify_status() -> Response:
    return jsonify(notifies=actions.notify_rows(_ids(request.args.get("ids", "")), scope()))


@bp.get("/audit")
def audit_list() -> Response:
    args = request.args
    flt = reports.AuditFilter(user=args.get("user", "")[:20], phone=_phone_key(
        args.get("phone", "")), action=args.get("action", "")[:64],
        since=_date(args.get("since")), until=_date(args.get("until"), end=True))
    page = lists.audit(scope(), flt, paging.params(lists.AUDIT_SORTS, paging.API_PER_PAGE))
    return paging.api_answer("events", [{
        "id": e.id, "at": iso(e.at), "tenant_id": e.tenant_id, "actor": e.actor,
        "action": e.action, "phone_id": e.device_id, "user_id": e.user_id,
        "call_id": e.call_id, "detail": reports.audit_detail(e),
    } for e in page.items], page)
