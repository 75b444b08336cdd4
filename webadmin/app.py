"""Flask application factory for ``hotdesk web``: the admin pages, the REST API and the
provisioning file server, each a blueprint."""

from __future__ import annotations

import secrets

from flask import Flask

from hotdesk.runtime import Runtime


def create_app(runtime: Runtime) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=runtime.config.web.secret_key or secrets.token_hex(32),
        HOTDESK=runtime,
    )
    from webadmin.provisioning import bp as provisioning_bp

    app.register_blueprint(provisioning_bp)
    from webadmin.metrics import bp as metrics_bp

    app.register_blueprint(metrics_bp)
    return app
