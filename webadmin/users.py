"""Users pages: list and search, add, edit, PIN, hot-desking switch, delete, import."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response

from hotdesk.admin import importers, lists, reports, usecases
from hotdesk.admin.inventory import InventoryError
from hotdesk.store.models import Device, Session, User
from webadmin import paging
from webadmin.actions import error_status
from webadmin.auth import (
    actor,
    current_admin,
    login_required,
    runtime,
    scope,
    scoped_or_404,
    tenant_choice,
)
from webadmin.jobs import ImportJobs

bp = Blueprint("users", __name__, url_prefix="/users")


def logged_in_map(users: list[User]) -> dict[int, list[Session]]:
    """Where each of ``users`` is logged in, with the phones, in one query."""
    ids = [u.id for u in users]
    out: dict[int, list[Session]] = {}
    if ids:
        for s in (Session.select(Session, Device).join(Device)
                  .where(Session.user.in_(ids) & Session.ended_at.is_null())
                  .order_by(Session.id)):
            out.setdefault(s.user_id, []).append(s)
    return out


@bp.get("")
@login_required
def index() -> str:
    page = lists.users(scope(), paging.params(lists.USER_SORTS))
    users = page.items
    return render_template("users.html", users=users, q=page.params.q,
                           where=logged_in_map(users),
                           locked=usecases.locked_users(runtime(), users),
                           **paging.template_context(page))


@bp.route("/new", methods=["GET", "POST"])
@login_required
def new() -> Response | str:
    form = request.form
    if request.method == "GET":
        return render_template("user_form.html", form={}, user=None,
                               tenants=reports.tenants(scope()))
    try:
        user = usecases.add_user(runtime(), tenant_choice(form.get("tenant_id")),
                                 form.get("extension", ""), name=form.get("name", ""),
                                 pin=form.get("pin") or None,
                                 sip_password=form.get("sip_password", ""),
                                 hotdesk=form.get("hotdesk") == "on", actor=actor()).user
    except InventoryError as exc:
        flash(str(exc), "danger")
        return render_template("user_form.html", form=form, user=None,
                               tenants=reports.tenants(scope())), error_status(exc)
    flash(f"User {user.extension} added.", "success")
    return redirect(url_for("users.edit", user_id=user.id))


@bp.route("/<int:user_id>", methods=["GET", "POST"])
@login_required
def edit(user_id: int) -> Response | str:
    user = scoped_or_404(User, user_id)
    sessions = logged_in_map([user]).get(user.id, [])
    locked_until = usecases.locked_until(runtime(), user)
    if request.method == "GET":
        form = {"name": user.display_name, "hotdesk": "on" if user.hotdesk_enabled else "",
                "language": user.language}
        return render_template("user_form.html", form=form, user=user, sessions=sessions,
                               locked_until=locked_until)
    try:
        result = usecases.change_user(runtime(), user, name=request.form.get("name", ""),
                                      sip_password=request.form.get("sip_password") or None,
                                      hotdesk=request.form.get("hotdesk") == "on",
                                      language=request.form.get("language") or None,
                                      actor=actor())
    except InventoryError as exc:
        flash(str(exc), "danger")
        return render_template("user_form.html", form=request.form, user=user,
                               sessions=sessions, locked_until=locked_until), error_status(exc)
    flash("User saved." + _reprovisioned(result), "success")
    return redirect(url_for("users.edit", user_id=user.id))


@bp.post("/<int:user_id>/pin")
@login_required
def pin(user_id: int) -> Response | str:
    user = scoped_or_404(User, user_id)
    try:
        if request.form.get("action") == "reset":
            new_pin = usecases.reset_pin(runtime(), user, actor=actor()).new_pin
            flash(f"New PIN for {user.extension}: {new_pin} — tell the user; it is not "
                  "shown again.", "warning")
        else:
            usecases.set_pin(runtime(), user, request.form.get("pin", ""), actor=actor())
            flash(f"PIN of {user.extension} changed.", "success")
    except InventoryError as exc:
        flash(str(exc), "danger")
    return redirect(url_for("users.edit", user_id=user.id))


@bp.post("/<int:user_id>/hotdesk")
@login_required
def hotdesk(user_id: int) -> Response:
    user = scoped_or_404(User, user_id)
    enable = request.form.get("enable") == "1"
    result = usecases.set_hotdesk(runtime(), user, enable, actor=actor())
    flash(f"Hot desking {'enabled' if enable else 'disabled'} for {user.extension}."
          + _reprovisioned(result), "success")
    if request.form.get("back") == "list":  # the same page of the list, same filter
        return redirect(url_for("users.index", **{k: v for k, v in request.args.items()
                                                  if k in ("page", "per_page", "sort", "q")}))
    return redirect(url_for("users.edit", user_id=user.id))


@bp.post("/<int:user_id>/delete")
@login_required
def delete(user_id: int) -> Response:
    user = scoped_or_404(User, user_id)
    usecases.remove_user(runtime(), user, actor=actor())
    flash(f"User {user.extension} deleted.", "success")
    return redirect(url_for("users.index"))


@bp.post("/<int:user_id>/unlock")
@login_required
def unlock(user_id: int) -> Response:
    user = scoped_or_404(User, user_id)
    usecases.unlock_user(runtime(), user, actor=actor())
    flash(f"User {user.extension} unlocked: they can log in again now.", "success")
    return redirect(url_for("users.edit", user_id=user.id))


def _reprovisioned(result: usecases.UserResult) -> str:
    n = len(set(result.phones))
    return f" {n} phone{'s' if n != 1 else ''} re-provisioned." if n else ""


def _read(field: str, label: str, problems: list[importers.Problem]) -> str:
    """The uploaded file (or pasted text) as text; lines that are not UTF-8 become
    problems of their own (with ``label`` naming the file when there are two)."""
    upload = request.files.get(field)
    if upload is not None and upload.filename:
        text, bad = importers.decode(upload.read(importers.MAX_INPUT_BYTES + 1))
        problems += [importers.Problem(p.line, f"{label}{p.message}") for p in bad]
        return text
    return request.form.get(field + "_text", "")


@bp.route("/import", methods=["GET", "POST"])
@login_required
def import_users() -> Response | str:
    tenants = reports.tenants(scope())
    if request.method == "GET":
        return render_template("import.html", parsers=importers.PARSERS, tenants=tenants,
                               form={})
    kind = request.form.get("kind", "csv")
    problems: list[importers.Problem] = []
    if kind == "asterisk":
        parsed = importers.parse_asterisk(_read("main", "pjsip.conf: ", problems),
                                          _read("voicemail", "voicemail.conf: ", problems))
    elif kind == "freeswitch":
        parsed = importers.parse_freeswitch(_read("main", "", problems))
    elif kind == "csv":
        parsed = importers.parse_csv(_read("main", "", problems))
    else:
        abort(400, "unknown import format")
    parsed.problems = sorted(problems + parsed.problems, key=lambda p: p.line)
    if not parsed.records:
        flash("Nothing to import: no users found in the file.", "danger")
        return render_template("import.html", parsers=importers.PARSERS, tenants=tenants,
                               form=request.form, problems=parsed.problems), 400
    jobs: ImportJobs = current_app.config["HOTDESK_JOBS"]
    admin = current_admin()
    job = jobs.start(runtime(), tenant_choice(request.form.get("tenant_id")), admin.id,
                     actor(), parsed, enable_hotdesk=request.form.get("hotdesk") == "on")
    return redirect(url_for("users.import_job", job_id=job.id))


def _job_or_404(job_id: str):  # type: ignore[no-untyped-def]
    job = current_app.config["HOTDESK_JOBS"].get(job_id)
    allowed = scope()
    if job is None or (allowed is not None and job.tenant_id not in allowed):
        abort(404)
    return job


@bp.get("/import/<job_id>")
@login_required
def import_job(job_id: str) -> str:
    return render_template("import_job.html", job=_job_or_404(job_id).as_dict())


@bp.get("/import/<job_id>.json")
@login_required
def import_job_json(job_id: str) -> Response:
    return jsonify(_job_or_404(job_id).as_dict())
