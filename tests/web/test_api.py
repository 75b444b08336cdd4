"""REST API behaviour: tokens, JSON errors, CRUD through the core."""

from __future__ import annotations

from hotdesk.calls.service import CallContext
from hotdesk.store.models import ApiToken, Session
from tests.web.conftest import bearer


def test_missing_or_bad_token_is_401_json(app, sysadmin):
    client = app.test_client()
    for headers in ({}, {"Authorization": "Bearer hd_nope"}, {"Authorization": "Basic x"}):
        response = client.get("/api/v1/phones", headers=headers)
        assert response.status_code == 401 and "error" in response.json


def test_token_is_stored_hashed(runtime, sysadmin):
    header = bearer(runtime, sysadmin)
    token = header["Authorization"].split()[1]
    assert not ApiToken.select().where(ApiToken.token_hash == token).exists()


def test_phone_crud_and_errors(runtime, app, sysadmin):
    client, headers = app.test_client(), bearer(runtime, sysadmin)
    body = {"mac": "0015.65aa.bbcc", "extension": "8090", "sip_password": "pw", "name": "D"}
    created = client.post("/api/v1/phones", json=body, headers=headers)
    assert created.status_code == 201
    phone = created.json["phone"]
    assert phone["mac"] == "001565aabbcc" and phone["config_state"] == "pending"
    assert created.json["steps"][0]["step"] == "check-sync"
    dup = client.post("/api/v1/phones", json=body, headers=headers)
    assert dup.status_code == 409 and "already registered" in dup.json["error"]
    bad = client.post("/api/v1/phones", data="nope", headers=headers)
    assert bad.status_code == 400
    assert bad.json == {"error": "the request body must be a JSON object"}
    changed = client.put(f"/api/v1/phones/{phone['id']}", json={"name": "Desk 90"},
                         headers=headers)
    assert changed.json["phone"]["name"] == "Desk 90"
    assert client.delete(f"/api/v1/phones/{phone['id']}", headers=headers).status_code == 200
    assert client.get(f"/api/v1/phones/{phone['id']}", headers=headers).status_code == 404


def test_users_sessions_and_force_logout(runtime, app, sysadmin, alice, desk):
    client, headers = app.test_client(), bearer(runtime, sysadmin)
    runtime.service.login(desk.id, "101", "1234",
                          CallContext(switch="asterisk", call_id="c", endpoint="8001"))
    users = client.get("/api/v1/users?q=Ali", headers=headers).json["users"]
    assert [u["extension"] for u in users] == ["101"] and users[0]["logged_in_on"] == [desk.id]
    assert "pin_hash" not in users[0] and "sip_password" not in users[0]
    [session] = client.get("/api/v1/sessions", headers=headers).json["sessions"]
    assert client.delete(f"/api/v1/sessions/{session['id']}",
                         headers=headers).json == {"result": "logged_out"}
    assert Session.get_by_id(session["id"]).end_reason == "admin"
    pin = client.put(f"/api/v1/users/{alice.id}/pin", json={"pin": "12"}, headers=headers)
    assert pin.status_code == 400 and "4 to 8 digits" in pin.json["error"]
    off = client.put(f"/api/v1/users/{alice.id}/hotdesk", json={"enabled": False},
                     headers=headers)
    assert off.json["user"]["hotdesk"] is False
    audit = client.get("/api/v1/audit?user=101&action=logout", headers=headers).json
    assert audit["total"] == 1 and audit["events"][0]["actor"] == "admin:root"


def test_notify_push_reports_each_phone(runtime, app, sysadmin, desk, desk2):
    client, headers = app.test_client(), bearer(runtime, sysadmin)
    pushed = client.post("/api/v1/notify", json={"phone_ids": [desk.id, desk2.id]},
                         headers=headers)
    assert pushed.status_code == 202
    ids = ",".join(str(n["id"]) for n in pushed.json["notifies"])
    status = client.get(f"/api/v1/notify?ids={ids}", headers=headers).json["notifies"]
    assert [n["result"] for n in status] == ["queued", "queued"]
    assert client.post("/api/v1/notify", json={}, headers=headers).status_code == 400


def test_a_push_larger_than_one_second_at_the_push_rate_is_paced(runtime, app, sysadmin):
    """More phones than [notify] push_rate in one POST /notify become a paced push: no
    outbox row yet, a campaign covering every phone of the tenant."""
    from hotdesk.admin.inventory import default_tenant
    from hotdesk.notify.push_models import PushCampaign
    from hotdesk.store.models import OutboxNotify
    from tests.web import fleet

    rate = runtime.config.notify.push_rate
    tenant = default_tenant()
    phones = fleet.add_phones(tenant, int(rate) + 7)
    client, headers = app.test_client(), bearer(runtime, sysadmin)
    few = client.post("/api/v1/notify",
                      json={"phone_ids": [p.id for p in phones[:int(rate)]]}, headers=headers)
    assert few.status_code == 202 and len(few.json["notifies"]) == int(rate)
    assert "campaign" not in few.json
    many = client.post("/api/v1/notify", json={"tenant_id": tenant.id}, headers=headers)
    assert many.status_code == 202 and many.json["notifies"] == []
    campaign = many.json["campaign"]
    assert campaign["total"] == len(phones) and campaign["state"] == "running"
    assert PushCampaign.get_by_id(campaign["id"]).rate == rate
    assert OutboxNotify.select().count() == int(rate)  # only the immediate push so far
    missing = client.post("/api/v1/notify", json={"phone_ids": [phones[0].id, 2**30]},
                          headers=headers)
    assert missing.status_code == 404 and "no phone" in missing.json["error"]


def test_nul_in_a_query_value_is_400_not_500(runtime, app, sysadmin, root_client):
    client, headers = app.test_client(), bearer(runtime, sysadmin)
    response = client.get("/api/v1/audit?action=%00&user=101", headers=headers)
    assert response.status_code == 400 and "NUL" in response.json["error"]
    assert root_client.get("/audit?action=a%00b").status_code == 400
    assert client.get("/api/v1/audit?action=login", headers=headers).status_code == 200


def test_api_sets_transport_and_user_zone(runtime, app, sysadmin, alice):
    client, headers = app.test_client(), bearer(runtime, sysadmin)
    body = {"mac": "0015.6500.0d06", "extension": "8506", "sip_password": "pw",
            "transport": "tcp"}
    phone = client.post("/api/v1/phones", json=body, headers=headers).json["phone"]
    assert phone["transport"] == "tcp"
    bad = client.put(f"/api/v1/users/{alice.id}", json={"timezone": "Nowhere"},
                     headers=headers)
    assert bad.status_code == 400 and "IANA" in bad.json["error"]
    ok = client.put(f"/api/v1/users/{alice.id}", json={"timezone": "Europe/Paris"},
                    headers=headers)
    assert ok.json["user"]["timezone"] == "Europe/Paris"
