"""The signed-in admin's own API tokens: list (name, expiry, last use), create (the token
is shown once), revoke. Only hashes are stored, so a lost token is revoked, not shown."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from hotdesk.admin import admins
from hotdesk.store.models import utcnow
from webadmin.auth import actor, current_admin, login_required, runtime

bp = Blueprint("account", __name__, url_prefix="/account")
EXPIRY_CHOICES = (("", "never"), ("7", "in 7 days"), ("30", "in 30 days"),
                  ("90", "in 90 days"), ("365", "in a year"))


def _page(new_token: str = "", status: int = 200) -> tuple[str, int]:
    admin = current_admin()
    assert admin is not None
    return render_template("tokens.html", tokens=admins.list_tokens(admin), now=utcnow(),
                           new_token=new_token, choices=EXPIRY_CHOICES,
                           expired=admins.token_expired), status


@bp.get("/tokens")
@login_required
def tokens() -> tuple[str, int]:
    return _page()


@bp.post("/tokens")
@login_required
def token_create() -> tuple[str, int]:
    admin = current_admin()
    assert admin is not None
    days = request.form.get("expires_days", "")
    if days not in {value for value, _ in EXPIRY_CHOICES}:
        flash("Choose an expiry from the list.", "danger")
        return _page(status=400)
    expires = utcnow() + timedelta(days=int(days)) if days else None
    try:
        token = admins.create_token(runtime().db, admin, request.form.get("name", ""),
                                    actor=actor(), expires_at=expires)
    except admins.AdminError as exc:
        flash(str(exc), "danger")
        return _page(status=400)
    flash("Token created. Copy it now: it is not shown again.", "success")
    return _page(new_token=token)


@bp.post("/tokens/<int:token_id>/revoke")
@login_required
def token_revoke(token_id: int) -> Response:
    try:  # someone else's token is as unknown as a missing one: 404
        token = admins.revoke_token(runtime().db, token_id, actor=actor(),
                                    owner=current_admin())
    except admins.AdminError:
        abort(404)
    flash(f"Token {token.label or token.id} revoked.", "success")
    return redirect(url_for("account.tokens"))
