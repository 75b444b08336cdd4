"""REST API of paced pushes (/api/v1/push-campaigns): start, list, show, cancel.

Routes join the ``api`` blueprint, so bearer authentication, the tenant scope and the
error format are the API's own; the rules are :mod:`hotdesk.notify.campaigns`.
"""

from __future__ import annotations

import math
from typing import Any

from flask import abort, jsonify
from werkzeug.wrappers import Response

from hotdesk.admin.errors import InventoryError
from hotdesk.notify import campaigns, push_selection
from hotdesk.notify.push_models import PushCampaign
from webadmin.api import MAX_ID, _error, body, bp
from webadmin.auth import actor, runtime, scope


def _ids(data: dict[str, Any]) -> list[int]:
    wanted = data.get("phone_ids", [])
    if not isinstance(wanted, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) and 0 < i < MAX_ID for i in wanted):
        abort(400, "phone_ids must be a list of phone ids")
    return wanted


def _pasted(data: dict[str, Any]) -> str:
    phones = data.get("phones", "")
    if isinstance(phones, list) and all(isinstance(p, str) for p in phones):
        return "\n".join(phones)
    if not isinstance(phones, str):
        abort(400, "phones must be a list of MAC addresses or extensions")
    return phones


def _rate(data: dict[str, Any]) -> float | None:
    rate = data.get("rate")
    if rate is None:
        return None
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate):
        abort(400, "rate must be a number of phones per second")
    return float(rate)


@bp.post("/push-campaigns")
def push_start() -> Response:
    data = body()
    kind = data.get("scope")
    if kind not in push_selection.SCOPES:
        abort(400, f"scope must be one of {', '.join(push_selection.SCOPES)}")
    tenant_id = data.get("tenant_id")
    if kind == "tenant" and (isinstance(tenant_id, bool) or not isinstance(tenant_id, int)
                             or not 0 < tenant_id < MAX_ID):
        abort(400, "tenant_id must be a positive integer")
    try:
        ids = _ids(data)
        if kind == "selected" and _pasted(data).strip():
            ids = ids + push_selection.resolve_phones(_pasted(data), scope())
        chosen = push_selection.phones_for(scope(), kind, tenant_id=tenant_id, device_ids=ids)
        campaign = campaigns.start(runtime().config, kind, chosen, actor(), rate=_rate(data))
    except InventoryError as exc:
        return _error(exc)
    response = jsonify(campaign=campaigns.progress(campaign).as_dict())
    response.status_code = 202
    return response


@bp.get("/push-campaigns")
def push_list() -> Response:
    return jsonify(campaigns=[p.as_dict() for p in campaigns.recent(scope(), limit=50)])


def _visible(campaign_id: int) -> PushCampaign:
    try:
        return campaigns.visible(campaign_id, scope())
    except InventoryError as exc:
        abort(404, str(exc))


@bp.get("/push-campaigns/<int:campaign_id>")
def push_show(campaign_id: int) -> Response:
    return jsonify(campaign=campaigns.progress(_visible(campaign_id)).as_dict())


@bp.post("/push-campaigns/<int:campaign_id>/cancel")
def push_cancel(campaign_id: int) -> Response:
    _visible(campaign_id)
    try:
        p = campaigns.cancel(campaign_id, scope(), actor())
    except InventoryError as exc:
        return _error(exc)
    return jsonify(campaign=p.as_dict())
