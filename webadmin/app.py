"""Flask application factory for ``hotdesk web``: the admin pages, the REST API and the
provisioning file server, each a blueprint."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from flask import Flask, abort, jsonify, redirect, render_template, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from hotdesk.admin.signin_throttle import SharedSigninThrottle
from hotdesk.provisioning.serving import (
    AuditThrottle,
    client_address,
    forwarded_https,
    parse_networks,
)
from hotdesk.runtime import Runtime
from hotdesk.settings import parse_listen
from webadmin.jobs import ImportJobs
from webadmin.secret import load_secret_key


class SessionInterface(SecureCookieSessionInterface):
    """Session cookie Secure flag: from ``[web] cookie_secure``; "auto" = the request's scheme."""

    def get_cookie_secure(self, app: Flask) -> bool:
        mode = app.config["HOTDESK"].config.web.cookie_secure
        if mode == "auto":
            return request.is_secure
        return mode == "true"


def trust_proxies(wsgi_app, networks):  # type: ignore[no-untyped-def]
    """Behind a reverse proxy of ``[web] trusted_proxies``: the client address and scheme
    come from its X-Forwarded-For / X-Forwarded-Proto (the allow-list, the sign-in
    throttle, the audit and the Secure cookie then see the phone's or browser's, not the
    proxy's). From any other peer the headers are ignored."""

    def middleware(environ, start_response):  # type: ignore[no-untyped-def]
        peer = environ.get("REMOTE_ADDR", "")
        environ["REMOTE_ADDR"] = client_address(
            peer, environ.get("HTTP_X_FORWARDED_FOR", ""), networks)
        https = forwarded_https(peer, environ.get("HTTP_X_FORWARDED_PROTO", ""), networks)
        if https is not None:
            environ["wsgi.url_scheme"] = "https" if https else "http"
        return wsgi_app(environ, start_response)

    return middleware


def _https_url(host: str, path: str, port: int) -> str:
    """The https URL of this request: same host name, the TLS listener's port."""
    name = urlsplit(f"//{host}").hostname or "localhost"
    if ":" in name:
        name = f"[{name}]"
    return f"https://{name}{'' if port == 443 else f':{port}'}{path}"


def create_app(runtime: Runtime) -> Flask:
    web = runtime.config.web
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=load_secret_key(runtime.config),
        HOTDESK=runtime,
        HOTDESK_THROTTLE=SharedSigninThrottle(
            max_failures=web.signin_max_failures,
            window=timedelta(minutes=web.signin_window_minutes)),
        HOTDESK_SIGNIN_AUDIT=AuditThrottle(),
        HOTDESK_JOBS=ImportJobs(),
        SESSION_COOKIE_NAME="hotdesk_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        MAX_CONTENT_LENGTH=8 * 1024 * 1024,
    )
    app.session_interface = SessionInterface()
    app.wsgi_app = trust_proxies(  # type: ignore[method-assign]
        app.wsgi_app, parse_networks(web.trusted_proxies, "[web] trusted_proxies"))
    csrf = CSRFProtect(app)

    from webadmin import account, api, auth, emergency, pages, phones, users
    from webadmin import api_push as _api_push  # noqa: F401 - routes join the api blueprint
    from webadmin import push as _push  # noqa: F401 - its routes join the pages blueprint
    from webadmin.provisioning import bp as provisioning_bp

    app.register_blueprint(provisioning_bp)
    from webadmin.metrics import bp as metrics_bp

    app.register_blueprint(metrics_bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(account.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(phones.bp)
    app.register_blueprint(users.bp)
    # The API authenticates with bearer tokens only, never the cookie: CSRF cannot apply.
    csrf.exempt(api.bp)
    csrf.exempt(emergency.bp_api)
    app.register_blueprint(api.bp)
    from webadmin import switch_directory

    # FreeSWITCH authenticates with HTTP basic; a browser cookie grants nothing here.
    csrf.exempt(switch_directory.bp)
    app.register_blueprint(switch_directory.bp)
    app.register_blueprint(emergency.bp)
    app.register_blueprint(emergency.bp_api)
    app.register_blueprint(api.bp_docs)
    pages.install_template_helpers(app)

    @app.before_request
    def refuse_nul_characters() -> None:
        """A NUL in a query or form value is invalid input (400): PostgreSQL text cannot
        hold one, and the driver would raise deep inside a query (a 500)."""
        for values in (request.args, request.form):
            for key, value in values.items(multi=True):
                if "\x00" in key or "\x00" in value:
                    abort(400, f"{key.replace(chr(0), '')!r}: NUL characters are not allowed")

    @app.before_request
    def redirect_to_https():  # type: ignore[no-untyped-def]
        """With TLS served directly, a plain-HTTP admin request (the redirect listener)
        goes to https. Phones' /prov/ and /healthz stay answered: a phone not moved to
        an https base_url keeps working, and does not follow redirects anyway."""
        if (not web.tls_certfile or request.is_secure
                or request.path.startswith("/prov/") or request.path == "/healthz"):
            return None
        port = parse_listen(web.listen)[1]
        return redirect(_https_url(request.host, request.full_path.rstrip("?"), port), 308)

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):  # type: ignore[no-untyped-def]
        return render_template("error.html", code=400,
                               message="The form expired or was sent from another site. "
                                       "Go back, reload the page and try again."), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        if request.path.startswith("/api/"):
            return jsonify(error=exc.description or exc.name), exc.code
        if request.path.startswith("/prov/"):
            return exc
        return render_template("error.html", code=exc.code, message=exc.description), exc.code

    @app.after_request
    def security_headers(response):  # type: ignore[no-untyped-def]
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.is_secure and web.hsts_seconds > 0 and not request.path.startswith("/prov/"):
            response.headers.setdefault("Strict-Transport-Security",
                                        f"max-age={web.hsts_seconds}")
        if not request.path.startswith("/prov/"):
            response.headers.setdefault(
                "Content-Security-Policy",
                "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                "script-src 'self'; frame-ancestors 'none'; form-action 'self'")
        return response

    @app.teardown_appcontext
    def close_db(exc: BaseException | None) -> None:
        # WSGI threads are reused; a connection left in a failed transaction would
        # poison the next request on PostgreSQL.
        db = runtime.db
        if not db.is_closed() and not db.in_transaction():
            db.close()

    return app
