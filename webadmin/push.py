"""The "Push check-sync" page: paced push campaigns over all phones in the admin's scope,
a tenant, or chosen phones (a paginated, filtered list or pasted MACs / extensions).

Routes join the ``pages`` blueprint (so ``pages.notify`` stays the page's name); the
rules live in :mod:`hotdesk.notify.campaigns`, the pacing in :mod:`hotdesk.notify.pacing`.
"""

from __future__ import annotations

import math

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from hotdesk.admin import reports
from hotdesk.admin.errors import InventoryError, NotFound
from hotdesk.notify import campaigns, push_selection
from hotdesk.notify.campaigns import Progress
from hotdesk.ops import health
from hotdesk.ops.status import is_stale
from hotdesk.store.models import Device, utcnow
from webadmin.auth import actor, login_required, runtime, scope
from webadmin.pages import PAGE_SIZE, _int, bp, offline_after


def _rate(raw: str | None) -> float | None:
    """An optional rate from a form; a mistake is an InventoryError naming the field."""
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        rate = float(raw)
    except ValueError:
        raise InventoryError(f"rate {raw[:20]!r} is not a number of phones per second") from None
    if not math.isfinite(rate):
        raise InventoryError("rate must be a finite number")
    return rate


def _chosen_phones(form) -> tuple[str, list[int]]:  # type: ignore[no-untyped-def]
    """(kind, device ids) from the posted form, in the admin's scope."""
    mode = form.get("mode", "selected")
    if mode == "all":
        return "all", push_selection.phones_for(scope(), "all")
    if mode == "tenant":
        return "tenant", push_selection.phones_for(scope(), "tenant",
                                              tenant_id=_int(form.get("tenant_id")))
    ids = [_int(v) for v in form.getlist("device_id")]
    if any(i == 0 for i in ids):
        raise NotFound("no such phone")
    if form.get("phones", "").strip():
        try:
            ids += push_selection.resolve_phones(form["phones"], scope())
        except NotFound as exc:  # typed by the admin: a message, not a 404 page
            raise InventoryError(str(exc)) from None
    return "selected", push_selection.phones_for(scope(), "selected", device_ids=ids)


def _phone_page(query: str, page: int):  # type: ignore[no-untyped-def]
    devices = push_selection.scoped_devices(scope())
    if query:
        mac = query.lower().replace(":", "").replace("-", "").replace(".", "")
        devices = devices.where(Device.display_name.contains(query)
                                | Device.idle_extension.contains(query)
                                | Device.mac.contains(mac or query))
    total = devices.count()
    pages = max(math.ceil(total / PAGE_SIZE), 1)
    page = min(max(page, 1), pages)
    rows = list(devices.order_by(Device.idle_extension, Device.id).paginate(page, PAGE_SIZE))
    return rows, total, page, pages


@bp.route("/notify", methods=["GET", "POST"])
@login_required
def notify() -> Response | str:
    if request.method == "POST":
        try:
            kind, ids = _chosen_phones(request.form)
            campaign = campaigns.start(runtime().config, kind, ids, actor(),
                                       rate=_rate(request.form.get("rate")))
        except NotFound:
            abort(404)  # a tenant or phone id outside the scope: as if it did not exist
        except InventoryError as exc:
            flash(str(exc), "warning")
            return redirect(url_for("pages.notify"))
        flash(f"Push started: {campaign.total} phone(s) at {campaign.rate:g} per second.",
              "success")
        return redirect(url_for("pages.notify_campaign", campaign_id=campaign.id))
    query = request.args.get("q", "").strip()[:64]
    rows, total, page, pages = _phone_page(query, _int(request.args.get("page", "1")) or 1)
    statuses = reports.phone_statuses(rows, offline_after())
    in_scope = push_selection.scoped_devices(scope()).count()
    rate = runtime().config.notify.push_rate
    return render_template("notify.html", devices=rows, statuses=statuses, total=total,
                           pacer_running=pacer_running(),
                           page=page, pages=pages, q=query, in_scope=in_scope, rate=rate,
                           minutes=math.ceil(in_scope / rate / 60),
                           tenants=reports.tenants(scope()),
                           campaigns=campaigns.recent(scope()))


def pacer_running() -> bool:
    """Some ``hotdesk worker`` reports its push pacer up: without one a push waits."""
    now = utcnow()
    return any(b.component == "push-pacer" and b.state == "up" and not is_stale(b, now)
               for b in health.read_all())


def _campaign(campaign_id: int) -> Progress:
    try:
        return campaigns.progress(campaigns.visible(campaign_id, scope()))
    except InventoryError:
        abort(404)


@bp.get("/notify/campaigns/<int:campaign_id>")
@login_required
def notify_campaign(campaign_id: int) -> str:
    return render_template("notify_campaign.html", c=_campaign(campaign_id))


@bp.get("/notify/campaigns/<int:campaign_id>.json")
@login_required
def notify_campaign_json(campaign_id: int) -> Response:
    return jsonify(_campaign(campaign_id).as_dict())


@bp.get("/notify/campaigns.json")
@login_required
def notify_campaigns_json() -> Response:
    return jsonify(campaigns=[p.as_dict() for p in campaigns.recent(scope())])


@bp.post("/notify/campaigns/<int:campaign_id>/cancel")
@login_required
def notify_campaign_cancel(campaign_id: int) -> Response:
    _campaign(campaign_id)  # 404 outside the scope
    try:
        p = campaigns.cancel(campaign_id, scope(), actor())
    except InventoryError as exc:
        flash(str(exc), "warning")
    else:
        flash(f"Push {p.id} cancelled: {p.cancelled} phone(s) will not be pushed.", "success")
    return redirect(url_for("pages.notify_campaign", campaign_id=campaign_id))
