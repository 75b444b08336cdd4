"""Admin pages other than phones and users: dashboard, discovered phones, sessions,
check-sync pushes, the audit log and per-tenant settings."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response

from hotdesk.admin import inventory, lists, reports, zones
from hotdesk.mac import InvalidMac, format_mac, normalise_mac
from hotdesk.ops import health
from hotdesk.ops.status import is_stale
from hotdesk.provisioning import discovery
from hotdesk.provisioning.render import split_hostport
from hotdesk.store.models import Device, DiscoveredPhone, Session, Tenant, User, utcnow
from webadmin import actions, integrations, paging
from webadmin.auth import (
    actor,
    current_admin,
    login_required,
    runtime,
    scope,
    scoped_or_404,
)

bp = Blueprint("pages", __name__)
PAGE_SIZE = 50


def install_template_helpers(app: Flask) -> None:
    @app.context_processor
    def helpers() -> dict[str, object]:
        return {"admin": current_admin(), "format_mac": format_mac, "when": when}


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "–"


def devices_in_scope():  # type: ignore[no-untyped-def]
    return reports.scoped(Device.select(), Device, scope()).order_by(Device.idle_extension)


def offline_after() -> timedelta:
    return timedelta(minutes=runtime().config.web.offline_after_minutes)


def chart(points: list[tuple[datetime, int]]) -> dict[str, object]:
    """Bar geometry for the logins-per-hour SVG (drawn by the template, no JS needed)."""
    top = max([n for _, n in points] + [1])
    width, height, gap = 24, 120, 4
    bars = []
    for i, (hour, count) in enumerate(points):
        h = round(count / top * height)
        bars.append({"x": i * (width + gap), "y": height - h, "h": h, "count": count,
                     "label": hour.strftime("%H"), "title": f"{hour:%Y-%m-%d %H}:00 UTC: "
                                                            f"{count} login(s)"})
    return {"bars": bars, "width": len(points) * (width + gap), "height": height,
            "bar_width": width, "top": top, "total": sum(n for _, n in points)}


@bp.get("/")
@login_required
def dashboard() -> str:
    counts = reports.phone_state_counts(scope(), offline_after())
    active = list(reports.scoped(Session.select().where(Session.ended_at.is_null()), Session,
                                 scope()).order_by(Session.started_at.desc()).limit(10))
    return render_template(
        "dashboard.html", counts=counts, total=counts["total"], sessions=active,
        failures=reports.recent_failures(scope()),
        chart=chart(reports.logins_per_hour(scope())),
        offline_minutes=runtime().config.web.offline_after_minutes,
        switch=integrations.switch_status(runtime().config, scope()),
        detail=reports.audit_detail, beats=health.read_all(), now=utcnow(),
        is_stale=is_stale)


@bp.get("/discovered")
@login_required
def discovered() -> str:
    rows = []
    networks = discovery.pnp_networks(runtime().config.pnp.allow_networks)
    for phone in DiscoveredPhone.select().order_by(DiscoveredPhone.last_seen.desc()):
        device = Device.get_or_none(Device.mac == phone.mac)
        allowed = scope()
        if device is not None and allowed is not None and device.tenant_id not in allowed:
            continue
        decision = discovery.pnp_decision(device, split_hostport(phone.address)[0], networks) \
            if device is not None else None
        rows.append((phone, device, decision))
    return render_template("discovered.html", rows=rows)


@bp.get("/sessions")
@login_required
def sessions() -> str:
    page = lists.sessions(scope(), paging.params(lists.SESSION_SORTS))
    return render_template("sessions.html", sessions=page.items,
                           **paging.template_context(page))


@bp.post("/sessions/<int:session_id>/logout")
@login_required
def force_logout(session_id: int) -> Response:
    s = scoped_or_404(Session, session_id)
    if s.ended_at is not None:
        flash("That session had already ended.", "warning")
        return redirect(url_for("pages.sessions"))
    outcome = runtime().service.logout(s.device_id, reason="admin", actor=actor())
    if outcome.value == "logged_out":
        flash(f"{s.user.extension} {s.user.display_name} logged out of "
              f"{s.device.display_name or s.device.idle_extension}; the phone is being "
              "returned to its idle profile.", "success")
    else:
        flash(f"Nothing to do: {outcome.value.replace('_', ' ')}.", "warning")
    return redirect(url_for("pages.sessions"))


def _int(value: object) -> int:
    """A database id or page number from a form; 0 when it is not one (never overflows)."""
    try:
        number = int(str(value))
    except ValueError:
        return 0
    return number if 0 < number < 2**31 else 0


def _ids(raw: str) -> list[int]:
    return [n for x in raw.split(",")[:1000] if (n := _int(x.strip()))]


@bp.get("/notify/progress")
@login_required
def notify_progress() -> str:
    ids = _ids(request.args.get("ids", ""))
    return render_template("notify_progress.html", ids=ids,
                           rows=actions.notify_rows(ids, scope()))


@bp.get("/notify/progress.json")
@login_required
def notify_progress_json() -> Response:
    rows = actions.notify_rows(_ids(request.args.get("ids", "")), scope())
    return jsonify(rows=rows, done=all(r["status"] != "pending" for r in rows))


@bp.get("/audit")
@login_required
def audit_log() -> str:
    args = request.args
    flt = reports.AuditFilter(user=args.get("user", "").strip()[:20],
                              phone=_phone_key(args.get("phone", "")),
                              action=args.get("action", "").strip()[:64],
                              since=_date(args.get("since")), until=_date(args.get("until"),
                                                                          end=True))
    page = lists.audit(scope(), flt, paging.params(lists.AUDIT_SORTS, PAGE_SIZE))
    return render_template("audit.html", events=page.items, actions=reports.audit_actions(),
                           args=args, detail=reports.audit_detail,
                           **paging.template_context(page))


def _phone_key(raw: str) -> str:
    raw = raw.strip()[:40]
    if not raw:
        return ""
    try:
        return normalise_mac(raw)
    except InvalidMac:
        return raw


def _date(raw: str | None, end: bool = False) -> datetime | None:
    if not raw:
        return None
    for fmt in ("%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            value = datetime.strptime(raw.strip(), fmt)
        except ValueError:
            continue
        return value + timedelta(days=1) - timedelta(microseconds=1) \
            if end and fmt == "%Y-%m-%d" else value
    return None


@bp.route("/settings", methods=["GET", "POST"])
@login_required
def settings() -> Response | str:
    tenants = reports.tenants(scope())
    wanted = _int(request.values.get("tenant_id")) or tenants[0].id
    tenant = scoped_or_404(Tenant, wanted)
    form = request.form if request.method == "POST" else {
        "multiple_login": tenant.multiple_login,
        "max_login_minutes": "" if tenant.max_login_minutes is None
        else str(tenant.max_login_minutes),
        "daily_logout_time": tenant.daily_logout_time, "timezone": tenant.timezone}
    if request.method == "POST":
        raw = request.form.get("max_login_minutes", "").strip()
        try:
            minutes = int(raw) if raw else None
            zone = zones.check_zone(request.form.get("timezone", ""))  # before any write
            inventory.set_tenant_policy(runtime().db, tenant,
                                        request.form.get("multiple_login", ""), minutes,
                                        request.form.get("daily_logout_time", ""),
                                        actor=actor())
            if zone != tenant.timezone:
                zones.set_tenant_timezone(runtime().db, runtime().service, tenant, zone,
                                          actor=actor())
        except ValueError as exc:  # InventoryError is a ValueError, so is int("x")
            msg = str(exc) if isinstance(exc, inventory.InventoryError) else \
                "maximum login time must be a whole number of minutes"
            flash(msg, "danger")
            return render_template("settings.html", **_settings_context(tenant, tenants,
                                                                        form)), 400
        flash(f"Settings of {tenant.name} saved.", "success")
        return redirect(url_for("pages.settings", tenant_id=tenant.id))
    return render_template("settings.html", **_settings_context(tenant, tenants, form))


def _settings_context(tenant: Tenant, tenants: list[Tenant], form) -> dict:  # type: ignore[no-untyped-def]
    cfg = runtime().config
    return {"tenant": tenant, "tenants": tenants, "form": form, "policy": cfg.policy,
            "prov_timezone": cfg.provisioning.timezone,
            "choices": inventory.MULTIPLE_LOGIN_CHOICES,
            "switch": integrations.switch_status(cfg, [tenant.id]),
            "effective": runtime().service.policy_for(tenant),
            "users": User.select().where(User.tenant == tenant).count(),
            "now": utcnow()}


@bp.get("/healthz")
def healthz() -> Response:
    """Liveness for load balancers: the process answers and the database responds."""
    try:
        runtime().db.execute_sql("SELECT 1")
    except Exception as exc:  # report, do not crash
        current_app.logger.error("health check: database error: %s", exc)
        return jsonify(status="database unavailable"), 503
    return jsonify(status="ok")
