"""Admin credentials over their whole life: API tokens (name, expiry, last use, revoke,
ended by a password change or a disabled admin), server-side sessions (sign-out ends
them; the cookie carries no secret-derived data) and the sign-in redirect target."""

from __future__ import annotations

import base64
import json
import zlib
from datetime import timedelta

import pytest

from hotdesk.admin import admins
from hotdesk.store.models import AdminWebSession, ApiToken, AuditEvent, utcnow
from hotdesk_cli.main import main
from tests.web.conftest import PASSWORD, client_for, csrf_token, sign_in

API = "/api/v1/phones"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_token_has_a_name_an_expiry_and_a_last_used_time(runtime, app, sysadmin):
    client = app.test_client()
    token = admins.create_token(runtime.db, sysadmin, "inventory sync",
                                expires_at=utcnow() + timedelta(days=1))
    row = ApiToken.get(ApiToken.label == "inventory sync")
    assert row.last_used_at is None and row.token_hash != token and token not in row.token_hash
    assert client.get(API, headers=auth(token)).status_code == 200
    assert ApiToken.get_by_id(row.id).last_used_at is not None
    ApiToken.update(expires_at=utcnow() - timedelta(seconds=1)).where(
        ApiToken.id == row.id).execute()
    assert client.get(API, headers=auth(token)).status_code == 401


def test_password_change_and_disabling_end_tokens_and_sessions(runtime, app, sysadmin):
    browser = client_for(app, sysadmin)
    token = admins.create_token(runtime.db, sysadmin, "ci")
    admins.set_password(runtime.db, sysadmin, "another long password")
    assert app.test_client().get(API, headers=auth(token)).status_code == 401
    assert browser.get("/").status_code == 302  # back to the sign-in page
    assert ApiToken.select().count() == 0 and AdminWebSession.select().count() == 0

    browser = app.test_client()
    assert sign_in(browser, "root", "another long password").status_code == 302
    token = admins.create_token(runtime.db, sysadmin, "ci")
    admins.set_disabled(runtime.db, sysadmin, True)
    assert app.test_client().get(API, headers=auth(token)).status_code == 401
    assert browser.get("/").status_code == 302
    assert sign_in(app.test_client(), "root", "another long password").status_code == 401


def test_cli_lists_and_revokes_tokens_and_disables_admins(runtime, config, sysadmin,
                                                          tenant_admin, monkeypatch, capsys):
    monkeypatch.setenv("HOTDESK_DATABASE_URL", config.database.url)
    assert main(["admin", "token", "--username", "root", "--name", "backup",
                 "--expires-days", "30"]) == 0
    token = capsys.readouterr().out.strip()
    assert main(["admin", "token", "--username", "ann", "--label", "old-style"]) == 0
    capsys.readouterr()
    assert main(["admin", "token", "list"]) == 0
    listing = capsys.readouterr().out
    assert "backup" in listing and "old-style" in listing and "never" in listing
    assert token not in listing and token[3:20] not in listing
    assert main(["admin", "token", "list", "--username", "ann"]) == 0
    assert "backup" not in capsys.readouterr().out
    row = ApiToken.get(ApiToken.label == "backup")
    assert row.expires_at is not None
    assert main(["admin", "token", "revoke", str(row.id)]) == 0
    assert admins.admin_for_token(token) is None
    assert main(["admin", "token", "revoke", str(row.id)]) == 1
    assert main(["admin", "disable", "--username", "ann"]) == 0
    assert ApiToken.select().count() == 0
    assert main(["admin", "enable", "--username", "ann"]) == 0
    assert AuditEvent.select().where(AuditEvent.action == "api_token_revoked").count() == 1


def test_token_page_creates_shows_once_and_revokes_only_own(runtime, app, sysadmin,
                                                            tenant_admin):
    theirs = admins.create_token(runtime.db, tenant_admin, "ann's")
    client = client_for(app, sysadmin)
    form = {"csrf_token": csrf_token(client, "/account/tokens"), "name": "grafana",
            "expires_days": "30"}
    page = client.post("/account/tokens", data=form).get_data(as_text=True)
    row = ApiToken.get(ApiToken.label == "grafana")
    token = page.split('id="new-token">')[1].split("<")[0]
    assert admins.admin_for_token(token).username == "root"
    assert 29 <= (row.expires_at - utcnow()).days <= 30
    listing = client.get("/account/tokens").get_data(as_text=True)
    assert "grafana" in listing and token not in listing and "ann&#39;s" not in listing
    other = ApiToken.get(ApiToken.label == "ann's")
    revoke = {"csrf_token": form["csrf_token"]}
    assert client.post(f"/account/tokens/{other.id}/revoke", data=revoke).status_code == 404
    assert admins.admin_for_token(theirs) is not None
    assert client.post(f"/account/tokens/{row.id}/revoke", data=revoke).status_code == 302
    assert admins.admin_for_token(token) is None


def _cookie_payload(client) -> dict:  # type: ignore[no-untyped-def]
    cookie = client.get_cookie("hotdesk_session").value
    data = cookie.lstrip(".").split(".")[0]
    raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    return json.loads(zlib.decompress(raw) if cookie.startswith(".") else raw)


def test_signout_ends_the_session_on_the_server(app, sysadmin):
    client = client_for(app, sysadmin)
    stolen = client.get_cookie("hotdesk_session").value
    assert client.get("/").status_code == 200
    client.post("/signout", data={"csrf_token": csrf_token(client, "/")})
    replay = app.test_client()
    replay.set_cookie("hotdesk_session", stolen)
    response = replay.get("/")
    assert response.status_code == 302 and "/signin" in response.headers["Location"]
    assert AdminWebSession.select().count() == 0


def test_session_cookie_carries_nothing_derived_from_the_password(app, sysadmin):
    client = client_for(app, sysadmin)
    payload = _cookie_payload(client)
    assert set(payload) <= {"sid", "csrf_token", "_permanent", "_flashes"}
    text = json.dumps(payload)
    hashed = sysadmin.password_hash
    assert all(hashed[i:i + 8] not in text for i in range(0, len(hashed) - 8, 4))
    assert AdminWebSession.get().key_hash != payload["sid"]


@pytest.mark.parametrize("target", [
    "/\t/evil.example/", "//evil.example/", "/\\evil.example", "https://evil.example/",
    "/\n/evil.example", " //evil.example", "/%09/evil.example/".replace("%09", "\x0b"),
    "javascript:alert(1)", "/\\/evil.example"])
def test_signin_never_redirects_off_site(app, sysadmin, target):
    client = app.test_client()
    token = csrf_token(client)
    response = client.post("/signin", query_string={"next": target},
                           data={"username": "root", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_signin_keeps_a_same_site_next_path(app, sysadmin):
    client = app.test_client()
    token = csrf_token(client)
    response = client.post("/signin", query_string={"next": "/phones?q=desk"},
                           data={"username": "root", "password": PASSWORD, "csrf_token": token})
    assert response.headers["Location"] == "/phones?q=desk"
