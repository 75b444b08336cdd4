"""Serving phone configs. They carry SIP passwords, so the URL holds the device's long
random token: knowing a MAC is not enough to fetch anything."""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, current_app, request

from hotdesk import audit
from hotdesk.models import ConfigFetch, Device, utcnow
from hotdesk.provisioning import make_environment, render_file
from hotdesk.runtime import Runtime

bp = Blueprint("provisioning", __name__, url_prefix="/prov")


@bp.get("/<token>/<path:filename>")
def fetch(token: str, filename: str) -> Response:
    runtime: Runtime = current_app.config["HOTDESK"]
    device = Device.get_or_none(Device.prov_token == token)
    if device is None or not hmac.compare_digest(device.prov_token, token):
        audit.record("config_denied", actor=f"http:{request.remote_addr}",
                     filename=filename[:100], user_agent=request.user_agent.string[:200])
        abort(404)
    content = render_file(make_environment(runtime.config), device, filename, runtime.config)
    if content is None:
        abort(404)
    now = utcnow()
    ConfigFetch.create(device=device, config_version=device.config_version, filename=filename,
                       at=now, address=request.remote_addr or "",
                       user_agent=request.user_agent.string[:200])
    Device.update(fetched_version=device.config_version, last_fetch_at=now,
                  last_user_agent=request.user_agent.string[:200]).where(
        Device.id == device.id).execute()
    return Response(content, mimetype="text/plain")
