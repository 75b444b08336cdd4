"""A tenant administrator cannot see or change another tenant's objects: every route of
the app is enumerated from ``app.url_map``, so a new route without a case here fails."""

from __future__ import annotations

import re

import pytest

from hotdesk.admin import admins, importers
from hotdesk.calls.service import CallContext
from hotdesk.emergency import notices
from hotdesk.notify import campaigns
from hotdesk.notify.push_models import PushCampaign
from hotdesk.store.models import (
    ApiToken,
    AuditEvent,
    Device,
    DiscoveredPhone,
    OutboxNotify,
    Session,
    Tenant,
    User,
)
from tests.web.conftest import bearer, csrf_token, other_phone, other_user

# Routes anyone may call: they carry no tenant data (/metrics needs [metrics] token).
# switch_directory.directory: no admin session at all; FreeSWITCH's HTTP basic
# credentials (tests/test_switch_freeswitch.py), answering by the request's SIP domain.
PUBLIC = {"static", "provisioning.fetch", "auth.signin", "auth.signout", "pages.healthz",
          "api_docs.openapi", "switch_directory.directory",
          "metrics.metrics"}
MARKERS = ("Other Desk Secret", "Otto Othertenant", "bbbb01", "bb:bb:01", "Other Corp",
           "other.example", "otto-secret")


@pytest.fixture
def world(runtime, app, tenant_admin, other_admin, other_tenant):
    """Tenant "other" has a phone, a logged-in user, a NOTIFY, a discovered phone, a job."""
    phone = other_phone(runtime, other_tenant)
    user = other_user(runtime, other_tenant)
    ctx = CallContext(switch="asterisk", call_id="o1", endpoint="9001",
                      domain="other.example")
    assert runtime.service.login(phone.id, "777", "7777", ctx).outcome.value == "ok"
    session = Session.get(Session.device == phone)
    notify = OutboxNotify.select().where(OutboxNotify.device == phone).get()
    found = DiscoveredPhone.create(mac=phone.mac, vendor="Yealink", model="T54W")
    notices.handle(notices.SeenCall(switch="asterisk", call_id="o-911", endpoint="777",
                                    number="911", domain="other.example"),
                   runtime.config.emergency)
    job = app.config["HOTDESK_JOBS"].start(
        runtime, other_tenant, other_admin.id, "admin:olga",
        importers.parse_csv("778,Olaf Other,1234,pw,yes\n"), enable_hotdesk=False)
    admins.create_token(runtime.db, other_admin, "olga's token")
    push = campaigns.start(runtime.config, "tenant", [phone.id], "admin:olga")
    return {"campaign_id": push.id, "token_id": ApiToken.get(ApiToken.label == "olga's token").id,
            "device_id": phone.id, "phone_id": phone.id, "user_id": user.id,
            "session_id": session.id, "job_id": job.id, "notify_id": notify.id,
            "discovered_id": found.id, "tenant_id": other_tenant.id}


def _unchanged(world):
    phone = Device.get_by_id(world["device_id"])
    user = User.get_by_id(world["user_id"])
    assert phone.display_name == "Other Desk Secret" and user.display_name == "Otto Othertenant"
    assert Session.get_by_id(world["session_id"]).ended_at is None
    assert PushCampaign.get_by_id(world["campaign_id"]).state == "running"
    assert not AuditEvent.select().where(AuditEvent.actor == "admin:ann",
                                         AuditEvent.tenant == world["tenant_id"]).exists()


def _no_markers(text):
    for marker in MARKERS:
        assert marker not in text, marker


def test_every_route_is_tenant_scoped(runtime, app, ann_client, tenant_admin, world):
    api_headers = bearer(runtime, tenant_admin)
    token = csrf_token(ann_client, "/")
    checked: set[tuple[str, str]] = set()
    post_checks = _argless_post_checks(world)
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            checked.add((rule.endpoint, method))
            is_api = rule.rule.startswith("/api/")
            if rule.arguments:
                missing = rule.arguments - world.keys()
                assert not missing, f"{rule.rule}: no tenant test value for {missing}"
                url = re.sub(r"<(?:[a-z]+:)?(\w+)>", lambda m: str(world[m.group(1)]),
                             rule.rule)
                if is_api:
                    response = ann_client.open(url, method=method, headers=api_headers,
                                               json={"name": "hacked", "pin": "1111",
                                                     "enabled": False})
                else:
                    response = ann_client.open(url, method=method,
                                               data={"csrf_token": token, "name": "hacked",
                                                     "pin": "1111", "enable": "0"})
                assert response.status_code == 404, (method, url, response.status_code)
            elif method == "GET":
                response = ann_client.get(rule.rule, headers=api_headers if is_api else {})
                assert response.status_code == 200, (rule.rule, response.status_code)
                _no_markers(response.get_data(as_text=True))
            else:
                assert (rule.endpoint, method) in post_checks, \
                    f"{method} {rule.rule} has no tenant-isolation case in this test"
                post_checks[(rule.endpoint, method)](ann_client, token, api_headers)
            _unchanged(world)
    assert ("phones.detail", "GET") in checked and ("api.phones_get", "GET") in checked


def _argless_post_checks(world):
    other = world["tenant_id"]

    def phone_new(client, token, _):
        client.post("/phones/new", data={"csrf_token": token, "tenant_id": other,
                                         "mac": "00:15:65:aa:00:09", "extension": "8109",
                                         "sip_password": "x", "method": "pnp",
                                         "network": "lan", "vendor": "yealink"})
        assert Device.get(Device.mac == "001565aa0009").tenant.sip_domain != "other.example"

    def user_new(client, token, _):
        client.post("/users/new", data={"csrf_token": token, "tenant_id": other,
                                        "extension": "5109"})
        assert User.get(User.extension == "5109").tenant_id != other

    def import_users(client, token, _):
        response = client.post("/users/import", data={
            "csrf_token": token, "tenant_id": other, "kind": "csv",
            "main_text": "5110,Imp\n"})
        assert response.status_code == 302
        job = app_jobs(client).get(response.headers["Location"].rsplit("/", 1)[1])
        assert job.tenant_id != other

    def notify(client, token, _):
        r = client.post("/notify", data={"csrf_token": token, "device_id": world["device_id"]})
        assert r.status_code == 404
        r = client.post("/notify", data={"csrf_token": token, "mode": "tenant",
                                         "tenant_id": other})
        assert r.status_code == 404

    def settings(client, token, _):
        r = client.post("/settings", data={"csrf_token": token, "tenant_id": other,
                                           "multiple_login": "deny"})
        assert r.status_code == 404
        assert Tenant.get_by_id(other).multiple_login == ""

    def api_phone(client, _, headers):
        r = client.post("/api/v1/phones", headers=headers, json={
            "tenant_id": other, "mac": "00:15:65:aa:00:0a", "extension": "8110",
            "sip_password": "x"})
        assert r.status_code == 404

    def api_user(client, _, headers):
        r = client.post("/api/v1/users", headers=headers,
                        json={"tenant_id": other, "extension": "5111"})
        assert r.status_code == 404

    def api_notify(client, _, headers):
        r = client.post("/api/v1/notify", headers=headers,
                        json={"phone_ids": [world["device_id"]]})
        assert r.status_code == 404
        r = client.post("/api/v1/notify", headers=headers, json={"tenant_id": other})
        assert r.status_code == 404

    def api_push(client, _, headers):
        r = client.post("/api/v1/push-campaigns", headers=headers,
                        json={"scope": "tenant", "tenant_id": other})
        assert r.status_code == 404
        r = client.post("/api/v1/push-campaigns", headers=headers,
                        json={"scope": "selected", "phones": ["00:15:65:bb:bb:01", "9001"]})
        # Answered exactly as for phones that do not exist.
        assert (r.status_code, r.json["error"]) == (404, "no phone 00:15:65:bb:bb:01, 9001")

    def emergency_default(client, token, _):
        r = client.post("/emergency/default", data={"csrf_token": token, "tenant_id": other,
                                                    "country": "US"})
        assert r.status_code == 404

    def token_new(client, token, _):
        client.post("/account/tokens", data={"csrf_token": token, "name": "mine",
                                             "expires_days": ""})
        assert ApiToken.get(ApiToken.label == "mine").admin.username == "ann"

    return {("emergency.tenant_default", "POST"): emergency_default,
            ("account.token_create", "POST"): token_new,
            ("phones.new", "POST"): phone_new, ("users.new", "POST"): user_new,
            ("users.import_users", "POST"): import_users, ("pages.notify", "POST"): notify,
            ("pages.settings", "POST"): settings, ("api.phones_create", "POST"): api_phone,
            ("api.users_create", "POST"): api_user, ("api.notify_push", "POST"): api_notify,
            ("api.push_start", "POST"): api_push}


def app_jobs(client):
    return client.application.config["HOTDESK_JOBS"]


def test_query_parameters_are_scoped_too(runtime, ann_client, tenant_admin, world):
    assert ann_client.get(f"/settings?tenant_id={world['tenant_id']}").status_code == 404
    assert ann_client.get(f"/phones/new?discovered={world['discovered_id']}").status_code == 404
    page = ann_client.get(f"/notify/progress?ids={world['notify_id']}")
    _no_markers(page.get_data(as_text=True))
    assert ann_client.get(f"/notify/progress.json?ids={world['notify_id']}").json["rows"] == []
    api = ann_client.get(f"/api/v1/notify?ids={world['notify_id']}",
                         headers=bearer(runtime, tenant_admin))
    assert api.json == {"notifies": []}


def test_other_tenant_admin_does_see_its_own(runtime, olga_client, other_admin, world):
    """The same requests succeed for the owner: the 404s above are scope, not breakage."""
    assert olga_client.get(f"/phones/{world['device_id']}").status_code == 200
    assert "Other Desk Secret" in olga_client.get("/phones").get_data(as_text=True)
    api = olga_client.get(f"/api/v1/users/{world['user_id']}",
                          headers=bearer(runtime, other_admin))
    assert api.status_code == 200 and api.json["user"]["extension"] == "777"


def test_system_admin_sees_every_tenant(root_client, world):
    text = root_client.get("/phones").get_data(as_text=True)
    assert "Other Desk Secret" in text
    assert root_client.get(f"/users/{world['user_id']}").status_code == 200
