"""Serving phone configs from ``hotdesk web``: a thin Flask adapter over
:class:`hotdesk.provisioning.serving.ConfigServer`, which holds every check (token, basic/digest
auth, allow-list, audited refusals, fetch recording) for this server and for
``hotdesk prov-serve`` alike."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, request

from hotdesk.provisioning.serving import ConfigServer, FetchRequest, new_address
from hotdesk.runtime import Runtime

__all__ = ["bp", "new_address"]

bp = Blueprint("provisioning", __name__, url_prefix="/prov")


def _server() -> ConfigServer:
    app: Flask = current_app  # type: ignore[assignment]
    server = app.extensions.get("hotdesk_provisioning")
    if server is None:
        runtime: Runtime = app.config["HOTDESK"]
        server = ConfigServer(runtime.config, runtime.db)
        app.extensions["hotdesk_provisioning"] = server
    return server


@bp.get("/<token>/<path:filename>")
def fetch(token: str, filename: str) -> Response:
    reply = _server().handle(FetchRequest(
        token=token, filename=filename, source=request.remote_addr or "",
        method=request.method, uri=request.full_path.rstrip("?"),
        authorization=request.headers.get("Authorization", ""),
        user_agent=request.user_agent.string, if_none_match=request.headers.get(
            "If-None-Match", "")))
    return Response(reply.body, status=reply.status, headers=reply.headers,
                    content_type=reply.content_type)
