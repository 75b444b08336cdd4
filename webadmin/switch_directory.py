"""``POST /switch/freeswitch/directory``: FreeSWITCH's mod_xml_curl asks for directory entries.

Answers the idle accounts hotdesk created (:func:`hotdesk.switch.idle_accounts.
directory_document`) and "not found" for anyone else, so FreeSWITCH falls back to its
own directory files. Authenticated with HTTP basic (``[switch] directory_username`` /
``directory_password``, the binding's ``gateway-credentials``); off while no password
is set. The reply carries SIP passwords: never cached, never logged.
"""

from __future__ import annotations

import hmac
import logging
from datetime import timedelta

from flask import Blueprint, Response, abort, current_app, request

from hotdesk.admin.admins import SignInThrottle
from hotdesk.switch.idle_accounts import NOT_FOUND, directory_document

log = logging.getLogger(__name__)
bp = Blueprint("switch_directory", __name__)


def _authorised(username: str, password: str) -> bool:
    auth = request.authorization
    if auth is None or auth.type != "basic":
        return False
    return (hmac.compare_digest((auth.username or "").encode(), username.encode())
            & hmac.compare_digest((auth.password or "").encode(), password.encode()))


@bp.post("/switch/freeswitch/directory")
def directory() -> Response:
    config = current_app.config["HOTDESK"].config
    sw = config.switch
    if not sw.directory_password:
        abort(404)
    address = request.remote_addr or ""
    throttle = current_app.config.setdefault(
        "HOTDESK_DIRECTORY_THROTTLE", SignInThrottle(max_failures=20, window=timedelta(minutes=15)))
    if throttle.blocked(address, address):
        return Response("429 too many failed attempts\n", 429, mimetype="text/plain")
    if not _authorised(sw.directory_username, sw.directory_password):
        throttle.failed(address, address)  # by address only: nobody can lock FreeSWITCH out
        log.warning("directory request from %s refused: wrong or missing credentials",
                    address)
        return Response("401 credentials required\n", 401, mimetype="text/plain",
                        headers={"WWW-Authenticate": 'Basic realm="hotdesk directory"'})
    form = request.form
    if form.get("section") != "directory":
        body = NOT_FOUND
    else:
        body = directory_document(config, form.get("user", ""), form.get("domain", ""))
    return Response(body, 200, mimetype="text/xml",
                    headers={"Cache-Control": "no-store"})
