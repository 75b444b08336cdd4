"""Who is asking, and what they may see: admin sign-in, the session, and the tenant scope
every page and API route goes through. Out-of-scope objects are 404, never 403, so a
tenant administrator cannot even learn that another tenant's object exists."""

from __future__ import annotations

import functools
import string
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

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

from hotdesk.admin import admins, reports, web_sessions
from hotdesk.admin.signin_throttle import SharedSigninThrottle
from hotdesk.provisioning.serving import AuditThrottle
from hotdesk.runtime import Runtime
from hotdesk.store import audit
from hotdesk.store.models import Admin, Device, DiscoveredPhone, Tenant

bp = Blueprint("auth", __name__)
F = TypeVar("F", bound=Callable[..., Any])


def runtime() -> Runtime:
    return current_app.config["HOTDESK"]


def current_admin() -> Admin | None:
    if "admin" not in g:
        # The cookie holds only a random session id; the server decides if it is alive.
        g.admin = web_sessions.admin_for(session.get("sid", ""))
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


# Characters a same-site path may hold; no whitespace, control characters or
# backslashes, which browsers strip or turn into "/" (so "/\t/evil" became "//evil").
_PATH_CHARS = frozenset(string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/%?")


def safe_next(target: str | None) -> str:
    """``target`` if it is a relative path on this site, else the dashboard."""
    if (target and len(target) <= 2000 and target.startswith("/")
            and not target.startswith("//") and set(target) <= _PATH_CHARS):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("pages.dashboard")


def _blocked(username: str, address: str) -> tuple[str, int]:
    throttle: AuditThrottle = current_app.config["HOTDESK_SIGNIN_AUDIT"]
    suppressed = throttle.admit(address)
    if suppressed is not None:  # one row per address a minute, at most 60 a minute
        audit.record("admin_signin_blocked", actor=f"http:{address}", username=username,
                     suppressed=suppressed)
    flash("Too many failed sign-ins. Wait a few minutes and try again.", "danger")
    return render_template("signin.html", username=username), 429


@bp.route("/signin", methods=["GET", "POST"])
def signin() -> Response | str | tuple[str, int]:
    throttle: SharedSigninThrottle = current_app.config["HOTDESK_THROTTLE"]
    username = request.form.get("username", "").strip()[:64]
    if request.method == "POST":
        address = _client_address()
        db = runtime().db
        charge = throttle.charge(db, username, address)
        if charge is None:
            return _blocked(username, address)
        admin = admins.check_password(username, request.form.get("password", ""))
        if admin is None:
            audit.record("admin_signin_failed", actor=f"http:{address}", username=username)
            current_app.logger.warning("admin sign-in failed for %r from %s", username, address)
            flash("Wrong username or password.", "danger")
            return render_template("signin.html", username=username), 401
        throttle.succeeded(db, charge)
        session.clear()  # a fresh session: no fixation
        session.permanent = True
        session["sid"] = web_sessions.start(db, admin, current_app.permanent_session_lifetime,
                                            address)
        audit.record("admin_signin", tenant=admin.tenant_id, actor=f"admin:{admin.username}",
                     address=address)
        return redirect(safe_next(request.args.get("next")))
    return render_template("signin.html", username=username)


@bp.post("/signout")
def signout() -> Response:
    admin = current_admin()
    web_sessions.end(runtime().db, session.get("sid", ""))
    if admin is not None:
        audit.record("admin_signout", tenant=admin.tenant_id, actor=f"admin:{admin.username}")
    session.clear()
    flash("Signed out.", "info")
    return redirect(url_for("auth.signin"))
