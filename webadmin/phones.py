"""Hot Desking phones pages: list, add, edit, delete, and one phone's provisioning state."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from hotdesk.admin import lists, reports, usecases
from hotdesk.admin.inventory import DeviceSpec, InventoryError
from hotdesk.mac import format_mac
from hotdesk.provisioning import discovery
from hotdesk.provisioning.render import device_url
from hotdesk.provisioning.vendors import VENDORS, model_warnings
from hotdesk.store.models import ConfigFetch, Device, OutboxNotify, Session, utcnow
from hotdesk.switch import idle_accounts, registrations
from webadmin import actions, paging
from webadmin.auth import (
    actor,
    discovered_or_404,
    login_required,
    runtime,
    scope,
    scoped_or_404,
    tenant_choice,
)
from webadmin.pages import offline_after

bp = Blueprint("phones", __name__, url_prefix="/phones")


def spec_from_form(form, keep_password: str = "") -> DeviceSpec:  # type: ignore[no-untyped-def]
    method = form.get("method", "pnp")
    return DeviceSpec(mac=form.get("mac", ""), extension=form.get("extension", ""),
                      sip_password=form.get("sip_password", "") or keep_password,
                      vendor=form.get("vendor", "yealink"), model=form.get("model", ""),
                      name=form.get("name", ""), method=method,
                      network=form.get("network", "lan"), sbc=form.get("sbc", ""),
                      rps=method == "rps" or form.get("rps") == "on",
                      transport=form.get("transport", ""))


def _form_context(form, device: Device | None = None) -> dict:  # type: ignore[no-untyped-def]
    return {"form": form, "device": device, "vendors": VENDORS,
            "tenants": reports.tenants(scope()),
            "creates_accounts": idle_accounts.manages_idle_accounts(runtime().config)}


def _report(steps: list[actions.Step]) -> None:
    for step in steps:
        flash(step.message, {True: "success", False: "danger", None: "secondary"}[step.ok])


@bp.get("")
@login_required
def index() -> str:
    """One page of phones, sorted and filtered in the database; per-phone status and
    registration are looked up for that page only, in a fixed number of queries."""
    page = lists.phones(scope(), paging.params(lists.PHONE_SORTS))
    devices = page.items
    return render_template("phones.html", devices=devices, **paging.template_context(page),
                           statuses=reports.phone_statuses(devices, offline_after()),
                           registrations=registrations.views(devices), now=utcnow(),
                           offline_minutes=runtime().config.web.offline_after_minutes,
                           url=lambda d: device_url(runtime().config, d),
                           switch_sync=idle_accounts.state(),
                           model_warnings=model_warnings(devices))


@bp.route("/new", methods=["GET", "POST"])
@login_required
def new() -> Response | str:
    if request.method == "GET":
        form: dict[str, str] = {"method": "pnp", "network": "lan", "vendor": "yealink"}
        if request.args.get("discovered", "").isdigit():
            found = discovered_or_404(int(request.args["discovered"]))
            form.update(mac=format_mac(found.mac), vendor=found.vendor.lower() or "yealink",
                        model=found.model)
        return render_template("phone_form.html", **_form_context(form))
    rt = runtime()
    tenant = tenant_choice(request.form.get("tenant_id"))
    try:
        result = usecases.add_phone(rt, tenant, spec_from_form(request.form), actor=actor())
    except InventoryError as exc:
        flash(str(exc), "danger")
        return (render_template("phone_form.html", **_form_context(request.form)),
                actions.error_status(exc))
    device = result.device
    flash(f"Phone {device.display_name or device.idle_extension} added.", "success")
    _report(result.steps)
    return redirect(url_for("phones.detail", device_id=device.id))


@bp.get("/<int:device_id>")
@login_required
def detail(device_id: int) -> str:
    device = scoped_or_404(Device, device_id)
    status = reports.phone_statuses([device], offline_after())[device.id]
    fetches = list(ConfigFetch.select().where(ConfigFetch.device == device)
                   .order_by(ConfigFetch.at.desc()).limit(10))
    notifies = list(OutboxNotify.select().where(OutboxNotify.device == device)
                    .order_by(OutboxNotify.id.desc()).limit(10))
    history = list(Session.select().where(Session.device == device)
                   .order_by(Session.started_at.desc()).limit(10))
    return render_template("phone.html", device=device, status=status, fetches=fetches,
                           notifies=notifies, history=history,
                           registration=registrations.view(device), now=utcnow(),
                           url=device_url(runtime().config, device),
                           result=reports.notify_result,
                           arm_minutes=runtime().config.pnp.arm_minutes)


@bp.post("/<int:device_id>/pnp-arm")
@login_required
def pnp_arm(device_id: int) -> Response:
    """Let the phone get its URL by PnP again for [pnp] arm_minutes (after a reset)."""
    device = scoped_or_404(Device, device_id)
    minutes = runtime().config.pnp.arm_minutes
    try:
        until = discovery.arm(runtime().db, device, minutes, actor=actor())
    except ValueError as exc:
        flash(str(exc), "danger")
    else:
        flash(f"PnP armed: the phone gets its provisioning URL at a PnP request until "
              f"{until:%H:%M} UTC.", "success")
    return redirect(url_for("phones.detail", device_id=device.id))


@bp.route("/<int:device_id>/edit", methods=["GET", "POST"])
@login_required
def edit(device_id: int) -> Response | str:
    device = scoped_or_404(Device, device_id)
    if request.method == "GET":
        form = {"mac": format_mac(device.mac), "extension": device.idle_extension,
                "vendor": device.vendor, "model": device.model, "name": device.display_name,
                "method": device.method,
                "network": device.network, "sbc": device.sbc_address,
                "transport": device.sip_transport,
                "rps": "on" if device.rps_enabled else ""}
        return render_template("phone_form.html", **_form_context(form, device))
    rt = runtime()
    try:
        result = usecases.change_phone(
            rt, device, spec_from_form(request.form, keep_password=device.idle_sip_password),
            actor=actor())
    except InventoryError as exc:
        flash(str(exc), "danger")
        return (render_template("phone_form.html", **_form_context(request.form, device)),
                actions.error_status(exc))
    flash("Phone saved.", "success")
    _report(result.steps)
    return redirect(url_for("phones.detail", device_id=device.id))


@bp.post("/<int:device_id>/delete")
@login_required
def delete(device_id: int) -> Response:
    device = scoped_or_404(Device, device_id)
    _report(usecases.remove_phone(runtime(), device, actor=actor()))
    flash(f"Phone {device.display_name or device.idle_extension} deleted.", "success")
    return redirect(url_for("phones.index"))


@bp.post("/<int:device_id>/notify")
@login_required
def notify(device_id: int) -> Response:
    device = scoped_or_404(Device, device_id)
    row = usecases.queue_checksync(runtime(), device, actor())
    return redirect(url_for("pages.notify_progress", ids=str(row.id) if row else ""))
