"""Emergency pages and API: a desk's location, the tenant default, and the dashboard's
banner of emergency calls. The rules live in :mod:`hotdesk.emergency`; this only
translates forms and JSON."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from hotdesk.admin import reports
from hotdesk.emergency import editing, locations, notices
from hotdesk.emergency.locations import FIELDS, LocationError
from hotdesk.store.models import Device, Tenant
from webadmin import api
from webadmin.auth import actor, login_required, runtime, scope, scoped_or_404, tenant_choice

bp = Blueprint("emergency", __name__)
bp_api = Blueprint("emergency_api", __name__, url_prefix="/api/v1")
bp_api.before_request(api.authenticate)

LABELS = {"country": "Country (ISO code, e.g. US)", "region": "State / region",
          "city": "City", "postal_code": "Postal code", "street": "Street",
          "number": "House number", "building": "Building", "floor": "Floor", "room": "Room",
          "text": "Other details for responders", "callback": "Callback number (ELIN)"}


def _form(location: locations.Location | None) -> dict[str, str]:
    return {name: getattr(location, name) for name in FIELDS} if location else {}


def _page(title: str, form: Any, back: str, status: int = 200, **extra: Any):  # type: ignore[no-untyped-def]
    return render_template("emergency_location.html", title=title, form=form, back=back,
                           fields=FIELDS, labels=LABELS, **extra), status


@bp.route("/phones/<int:device_id>/location", methods=["GET", "POST"])
@login_required
def phone_location(device_id: int) -> Response | tuple[str, int]:
    device = scoped_or_404(Device, device_id)
    title = f"Emergency location of {device.display_name or device.idle_extension}"
    back = url_for("phones.detail", device_id=device.id)
    if request.method == "GET":
        return _page(title, _form(locations.desk_location(device.id)), back,
                     default=locations.tenant_location(device.tenant_id))
    try:
        editing.set_location(runtime().db, device.tenant, device,
                               {n: request.form.get(n, "") for n in FIELDS}, actor())
    except LocationError as exc:
        flash(str(exc), "danger")
        return _page(title, request.form, back, 400)
    flash("Emergency location saved; the switch gets it at once.", "success")
    return redirect(back)


@bp.route("/emergency/default", methods=["GET", "POST"])
@login_required
def tenant_default() -> Response | tuple[str, int]:
    raw = request.values.get("tenant_id", "")
    if raw and not (raw.isdigit() and scoped_or_404(Tenant, int(raw))):
        abort(404)
    tenant = tenant_choice(raw or None)
    title = f"Default emergency location of {tenant.name}"
    back = url_for("pages.dashboard")
    if request.method == "GET":
        return _page(title, {**_form(locations.tenant_location(tenant.id)),
                             "tenant_id": str(tenant.id)}, back,
                     tenants=reports.tenants(scope()))
    try:
        editing.set_location(runtime().db, tenant, None,
                               {n: request.form.get(n, "") for n in FIELDS}, actor())
    except LocationError as exc:
        flash(str(exc), "danger")
        return _page(title, request.form, back, 400, tenants=reports.tenants(scope()))
    flash("Default emergency location saved.", "success")
    return redirect(back)


@bp.get("/emergency/active")
@login_required
def active() -> Response:
    """Emergency calls of the last ``[emergency] banner_minutes``, for the banner."""
    allowed = scope()
    calls = notices.recent(runtime().config.emergency.banner_minutes,
                           tenant_ids=allowed)
    return jsonify(calls=calls)


# -- API --------------------------------------------------------------------------------

@bp_api.get("/phones/<int:phone_id>/location")
def api_get(phone_id: int) -> Response:
    device = scoped_or_404(Device, phone_id)
    return jsonify(location=_form(locations.desk_location(device.id)) or None)


@bp_api.put("/phones/<int:phone_id>/location")
def api_put(phone_id: int) -> Response:
    device = scoped_or_404(Device, phone_id)
    data = api.body()
    values = {key: api.text(data, key) for key in data}
    try:
        location = editing.set_location(runtime().db, device.tenant, device, values, actor())
    except LocationError as exc:
        abort(400, str(exc))
    return jsonify(location=_form(location) if not location.empty else None)


@bp_api.get("/emergency/calls")
def api_calls() -> Response:
    minutes = request.args.get("minutes", "1440")
    if not minutes.isdigit() or not 0 < int(minutes) <= 525600:
        abort(400, "minutes must be 1 to 525600")
    return jsonify(calls=notices.recent(int(minutes), tenant_ids=scope()))
