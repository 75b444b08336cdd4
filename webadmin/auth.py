"""Who is asking, and what they may see: admin sign-in, the session, and the tenant scope
every page and API route goes through. Out-of-scope objects are 404, never 403, so a
tenant administrator cannot even learn that another tenant's object exists."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response

from hotdesk.admin import admins, reports
from hotdesk.runtime import Runtime
from hotdesk.store import audit
from hotdesk.store.models import Admin, Device, DiscoveredPhone, Tenant, utcnow

bp = Blueprint("auth", __name__)
F = TypeVar("F", bound=Callable[..., Any])


def runtime() -> Runtime:
    return current_app.config["HOTDESK"]


def current_admin() -> Admin | None:
    if "admin" not in g:
        admin_id = session.get("admin_id")
        admin = Admin.get_or_none(Admin.id == admin_id) if admin_id else None
        # A password change elsewhere ends every other session of that admin.
        if admin is not None and session.get("pw") != admin.password_hash[-16:]:
            admin = None
        g.admin = admin
    return g.admin


def actor() -> str:
    admin = current_admin()
    return f"admin:{admin.username}" if admin else "admin:?"


def scope() -> reports.Scope:
    """Tenant ids the current admin may see; None = all (system administrator)."""
    admin = current_admin()
    if admin is None:
        abort(401)
    return None if admin.role == "system" else [admin.tenant_id]


def in_scope(tenant_id: int | None) -> bool:
    allowed = scope()
    return allowed is None or tenant_id in allowed


def scoped_or_404(model: Any, object_id: int) -> Any:
    """The object if it exists and belongs to a tenant the admin may see, else 404."""
    obj = model.get_or_none(model.id == object_id)
    owner = getattr(obj, "id" if model is Tenant else "tenant_id", None)
    if obj is None or not in_scope(owner):
        abort(404)
    return obj


def discovered_or_404(object_id: int) -> DiscoveredPhone:
    """Discovered phones belong to no tenant until adopted; then to the adopter's."""
    phone = DiscoveredPhone.get_or_none(DiscoveredPhone.id == object_id)
    if phone is None or not discovered_visible(phone):
        abort(404)
    return phone


def discovered_visible(phone: DiscoveredPhone) -> bool:
    device = Device.get_or_none(Device.mac == phone.mac)
    if device is None:
        return True
    return in_scope(device.tenant_id)


def tenant_choice(raw: str | None) -> Tenant:
    """The tenant a new object goes to: the admin's own, or a system admin's choice."""
    admin = current_admin()
    if admin is not None and admin.role == "tenant":
        return admin.tenant
    if raw and str(raw).isdigit():
        tenant = Tenant.get_or_none(Tenant.id == int(raw))
        if tenant is not None:
            return tenant
    return Tenant.get(Tenant.is_default == True)  # noqa: E712


def login_required(view: F) -> F:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_admin() is None:
            return redirect(url_for("auth.signin", next=request.path))
        return view(*args, **kwargs)
    return wrapped  # type: ignore[return-value]


def _client_address() -> str:
    return request.remote_addr or "?"


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("pages.dashboard")


@bp.route("/signin", methods=["GET", "POST"])
def signin() -> Response | str:
    throttle: admins.SignInThrottle = current_app.config["HOTDESK_THROTTLE"]
    username = request.form.get("username", "").strip()[:64]
    if request.method == "POST":
        address = _client_address()
        if throttle.blocked(username, address):
            audit.record("admin_signin_blocked", actor=f"http:{address}", username=username)
            flash("Too many failed sign-ins. Wait a few minutes and try again.", "danger")
            return render_template("signin.html", username=username), 429
        admin = admins.check_password(username, request.form.get("password", ""))
        if admin is None:
            throttle.failed(username, address)
            audit.record("admin_signin_failed", actor=f"http:{address}", username=username)
            current_app.logger.warning("admin sign-in failed for %r from %s", username, address)
            flash("Wrong username or password.", "danger")
            return render_template("signin.html", username=username), 401
        throttle.succeeded(username)
        session.clear()  # a fresh session: no fixation
        session.permanent = True
        session["admin_id"] = admin.id
        session["pw"] = admin.password_hash[-16:]
        session["at"] = utcnow().isoformat()
        audit.record("admin_signin", tenant=admin.tenant_id, actor=f"admin:{admin.username}",
                     address=address)
        return redirect(_safe_next(request.args.get("next")))
    return render_template("signin.html", username=username)


@bp.post("/signout")
def signout() -> Response:
    admin = current_admin()
    if admin is not None:
        audit.record("admin_signout", tenant=admin.tenant_id, actor=f"admin:{admin.username}")
    session.clear()
    flash("Signed out.", "info")
    return redirect(url_for("auth.signin"))
