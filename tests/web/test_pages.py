"""Pages and their rules through the Flask test client, with CSRF on."""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta

from hotdesk.calls.service import CallContext
from hotdesk.notify import pacing
from hotdesk.store.models import AuditEvent, Device, OutboxNotify, Session, Tenant, User, utcnow
from tests.web.conftest import PASSWORD, csrf_token, sign_in
from webadmin.app import create_app
from webadmin.secret import load_secret_key

PHONE = {"mac": "00 15 65 AA BB CC", "name": "Desk 7", "method": "pnp", "network": "lan",
         "extension": "8077", "sip_password": "idle-77", "vendor": "yealink", "model": "T54W"}


def test_phone_form_sets_the_phones_transport(root_client):
    token = csrf_token(root_client, "/phones/new")
    data = dict(PHONE, network="sbc", sbc="sbc.example.net", transport="tls", csrf_token=token)
    assert root_client.post("/phones/new", data=data).status_code == 302
    device = Device.get(Device.mac == "001565aabbcc")
    assert device.sip_transport == "tls"
    edit = root_client.get(f"/phones/{device.id}/edit").get_data(as_text=True)
    assert '<option value="tls" selected>' in edit
    bad = dict(data, mac="00:15:65:aa:bb:cd", extension="8078", transport="sctp")
    response = root_client.post("/phones/new", data=bad)
    assert response.status_code == 400 and "transport must be udp, tcp or tls" in \
        response.get_data(as_text=True)


def test_post_without_csrf_token_is_refused(root_client):
    response = root_client.post("/phones/new", data=PHONE)
    assert response.status_code == 400
    assert "form expired" in response.get_data(as_text=True)


def test_add_phone_normalises_mac_queues_checksync_and_reports(root_client):
    data = dict(PHONE, csrf_token=csrf_token(root_client, "/phones/new"))
    response = root_client.post("/phones/new", data=data, follow_redirects=True)
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "00:15:65:AA:BB:CC" in text and "check-sync NOTIFY queued" in text
    assert "PnP URL push: phone not yet seen" in text  # never discovered: nothing sent
    assert "/prov/" in text and "pending" in text
    assert OutboxNotify.select().count() == 1


def test_duplicate_mac_and_extension_keep_the_form_input(root_client, desk):
    token = csrf_token(root_client, "/phones/new")
    dup_mac = dict(PHONE, mac="00:15:65:12:34:AB", name="Kept name", csrf_token=token)
    response = root_client.post("/phones/new", data=dup_mac)
    text = response.get_data(as_text=True)
    assert response.status_code == 409  # the refusal's kind (conflict), as in the API
    assert "MAC 00:15:65:12:34:AB is already registered to a phone" in text
    assert 'value="Kept name"' in text and 'value="8077"' in text
    dup_ext = dict(PHONE, extension="8001", csrf_token=token)
    text = root_client.post("/phones/new", data=dup_ext).get_data(as_text=True)
    assert "extension 8001 is already another phone&#39;s idle extension" in text
    bad_mac = dict(PHONE, mac="not-a-mac", csrf_token=token)
    response = root_client.post("/phones/new", data=bad_mac)
    assert response.status_code == 400
    assert "is not a MAC address" in response.get_data(as_text=True)


def test_force_logout_from_sessions_page(runtime, root_client, alice, desk):
    ctx = CallContext(switch="asterisk", call_id="c", endpoint="8001")
    runtime.service.login(desk.id, "101", "1234", ctx)
    session = Session.get(Session.device == desk)
    token = csrf_token(root_client, "/sessions")
    response = root_client.post(f"/sessions/{session.id}/logout", data={"csrf_token": token})
    assert response.status_code == 302
    ended = Session.get_by_id(session.id)
    assert ended.end_reason == "admin"
    assert AuditEvent.get((AuditEvent.action == "logout")
                          & (AuditEvent.actor == "admin:root")).user_id == alice.id


def test_push_checksync_selection_is_a_paced_push_with_progress(root_client, runtime, desk,
                                                                desk2):
    token = csrf_token(root_client, "/notify")
    response = root_client.post("/notify", data={"csrf_token": token, "mode": "selected",
                                                 "device_id": [desk.id, desk2.id]})
    assert response.status_code == 302
    url = response.headers["Location"]
    progress = root_client.get(url + ".json").json
    assert (progress["state"], progress["total"], progress["waiting"]) == ("running", 2, 2)
    assert OutboxNotify.select().count() == 0  # queued by the pacer, not at once
    pacing.release(runtime.config, now=utcnow() + timedelta(seconds=1))
    rows = list(OutboxNotify.select().order_by(OutboxNotify.id.desc()).limit(2))
    OutboxNotify.update(status="sent", sent_at=utcnow()).where(
        OutboxNotify.id == rows[0].id).execute()
    OutboxNotify.update(status="failed", last_error="404 Not Found").where(
        OutboxNotify.id == rows[1].id).execute()
    pacing.release(runtime.config, now=utcnow() + timedelta(seconds=2))
    again = root_client.get(url + ".json").json
    assert (again["state"], again["sent"], again["failed"], again["percent"]) == (
        "done", 1, 1, 100)
    page = root_client.get(url).get_data(as_text=True)
    assert 'data-campaign-id="' in page and "sent 1" in page


def test_users_pin_hotdesk_and_import(root_client, alice):
    token = csrf_token(root_client, f"/users/{alice.id}")
    root_client.post(f"/users/{alice.id}/hotdesk", data={"csrf_token": token, "enable": "0"})
    assert not User.get_by_id(alice.id).hotdesk_enabled
    bad = root_client.post(f"/users/{alice.id}/pin", data={"csrf_token": token, "pin": "12"},
                           follow_redirects=True)
    assert "PIN must be 4 to 8 digits" in bad.get_data(as_text=True)
    reset = root_client.post(f"/users/{alice.id}/pin",
                             data={"csrf_token": token, "action": "reset"},
                             follow_redirects=True).get_data(as_text=True)
    assert "New PIN for 101:" in reset
    response = root_client.post("/users/import", data={
        "csrf_token": token, "kind": "csv", "main_text": "201,Zoe,5555,pw,yes\n202,Bad,1\n"})
    job_url = response.headers["Location"]
    for _ in range(100):
        job = root_client.get(job_url + ".json").json
        if job["state"] != "running":
            break
        time.sleep(0.05)
    assert job["created"] == ["201"] and job["problems"][0]["line"] == 2
    assert "<strong>1</strong> created" in root_client.get(job_url).get_data(as_text=True)
    assert User.get(User.extension == "201").hotdesk_enabled


def test_settings_validation_and_save(root_client):
    token = csrf_token(root_client, "/settings")
    bad = root_client.post("/settings", data={"csrf_token": token, "daily_logout_time": "25:00",
                                              "max_login_minutes": "30"})
    assert bad.status_code == 400 and 'value="30"' in bad.get_data(as_text=True)
    ok = root_client.post("/settings", data={"csrf_token": token, "multiple_login": "deny",
                                             "max_login_minutes": "480",
                                             "daily_logout_time": "19:30"})
    assert ok.status_code == 302
    tenant = Tenant.get(Tenant.is_default == True)  # noqa: E712
    assert (tenant.multiple_login, tenant.max_login_minutes, tenant.daily_logout_time) == (
        "deny", 480, "19:30")


def test_settings_tenant_time_zone(root_client, desk):
    token = csrf_token(root_client, "/settings")
    before = desk.config_version
    bad = root_client.post("/settings", data={"csrf_token": token, "multiple_login": "deny",
                                              "timezone": "Mars/Base"})
    assert bad.status_code == 400 and "not an IANA name" in bad.get_data(as_text=True)
    tenant = Tenant.get(Tenant.is_default == True)  # noqa: E712
    assert (tenant.timezone, tenant.multiple_login) == ("", "")  # nothing half-written
    ok = root_client.post("/settings", data={"csrf_token": token,
                                             "timezone": "Europe/Berlin"})
    assert ok.status_code == 302
    assert Tenant.get_by_id(tenant.id).timezone == "Europe/Berlin"
    assert desk.__class__.get_by_id(desk.id).config_version == before + 1
    assert OutboxNotify.select().where(OutboxNotify.device == desk.id).exists()
    page = root_client.get("/settings").get_data(as_text=True)
    assert 'value="Europe/Berlin"' in page


def test_sign_in_rate_limited_per_username(app, sysadmin):
    client = app.test_client()
    for _ in range(5):
        assert sign_in(client, "root", "wrong password").status_code == 401
    assert sign_in(client, "root", PASSWORD).status_code == 429
    assert AuditEvent.select().where(AuditEvent.action == "admin_signin_failed").count() == 5


def test_session_cookie_flags(app, sysadmin, web_runtime):
    client = app.test_client()
    response = sign_in(client, "root")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    secure_rt = dataclasses.replace(web_runtime, config=dataclasses.replace(
        web_runtime.config, web=dataclasses.replace(web_runtime.config.web,
                                                    cookie_secure="true")))
    secure_cookie = sign_in(create_app(secure_rt).test_client(), "root").headers["Set-Cookie"]
    assert "Secure" in secure_cookie


def test_secret_key_is_generated_once_and_kept(web_runtime, tmp_path):
    first = load_secret_key(web_runtime.config)
    assert len(first) == 64 and load_secret_key(web_runtime.config) == first
    assert (tmp_path / "secret").stat().st_mode & 0o077 == 0


def test_tenant_admin_sign_in_shows_role(ann_client):
    assert "Tenant Administrator (Default)" in ann_client.get("/").get_data(as_text=True)
