"""The paced-push page, its JSON, cancel and the REST API: scope, CSRF, messages, and a
page that shows one page of phones however many there are."""

from __future__ import annotations

from hotdesk.admin.inventory import default_tenant
from hotdesk.notify.push_models import PushCampaign, PushTarget
from hotdesk.ops import health
from hotdesk.store.models import AuditEvent, Device
from tests.test_push_campaigns import add_phones
from tests.web.conftest import bearer, csrf_token, other_phone


def test_the_page_lists_one_page_of_phones_and_finds_by_name_mac_or_extension(root_client,
                                                                            runtime):
    add_phones(120)
    page = root_client.get("/notify").get_data(as_text=True)
    assert page.count('name="device_id"') == 50 and "120 phone(s) · page 1 of 3" in page
    assert "Push to all 120 phones" in page
    assert "data-no-pacer" in page  # no worker has reported its pacer
    health.report("push-pacer", "up", "running", node="n1")
    assert "data-no-pacer" not in root_client.get("/notify").get_data(as_text=True)
    last = root_client.get("/notify?page=3").get_data(as_text=True)
    assert last.count('name="device_id"') == 20
    mac = Device.select().order_by(Device.id.desc()).first().mac
    found = root_client.get(f"/notify?q={mac[:2]}:{mac[2:4]}:{mac[4:6]}:{mac[6:8]}:"
                            f"{mac[8:10]}:{mac[10:]}").get_data(as_text=True)
    assert found.count('name="device_id"') == 1
    assert root_client.get("/notify?q=80007").get_data(as_text=True).count(
        'name="device_id"') == 1


def test_pasted_macs_and_extensions_start_a_push_and_mistakes_are_messages(root_client,
                                                                        runtime):
    phones = add_phones(3)
    mac = Device.get_by_id(phones[0]).mac
    token = csrf_token(root_client, "/notify")
    response = root_client.post("/notify", data={"csrf_token": token, "mode": "selected",
                                                 "phones": f"{mac}\n80002, 80002",
                                                 "rate": "5"})
    assert response.status_code == 302
    campaign = PushCampaign.get()
    assert (campaign.total, campaign.rate, campaign.actor) == (2, 5.0, "admin:root")
    assert [t.device_id for t in PushTarget.select().order_by(PushTarget.id)] == phones[:2]
    assert AuditEvent.get(AuditEvent.action == "push_started").actor == "admin:root"
    for data, message in (({"phones": "80099"}, "no phone 80099"),
                          ({"phones": "80001", "rate": "500"}, "at most 20 phones per second"),
                          ({"phones": "80001", "rate": "fast"}, "is not a number"),
                          ({}, "choose at least one phone")):
        page = root_client.post("/notify", data={"csrf_token": token, "mode": "selected",
                                                 **data}, follow_redirects=True)
        assert message in page.get_data(as_text=True), message
    assert PushCampaign.select().count() == 1  # nothing half-started


def test_cancel_needs_csrf_and_the_json_follows(root_client, runtime):
    add_phones(5)
    token = csrf_token(root_client, "/notify")
    url = root_client.post("/notify", data={"csrf_token": token, "mode": "all"}).headers[
        "Location"]
    campaign = PushCampaign.get()
    assert root_client.post(f"/notify/campaigns/{campaign.id}/cancel").status_code == 400
    assert PushCampaign.get_by_id(campaign.id).state == "running"
    listed = root_client.get("/notify/campaigns.json").json["campaigns"]
    assert [(c["id"], c["state"], c["total"]) for c in listed] == [(campaign.id, "running", 5)]
    done = root_client.post(f"/notify/campaigns/{campaign.id}/cancel",
                            data={"csrf_token": token}, follow_redirects=True)
    assert "5 phone(s) will not be pushed" in done.get_data(as_text=True)
    assert root_client.get(url + ".json").json["state"] == "cancelled"
    again = root_client.post(f"/notify/campaigns/{campaign.id}/cancel",
                             data={"csrf_token": token}, follow_redirects=True)
    assert "was already cancelled" in again.get_data(as_text=True)


def test_a_tenant_admin_sees_and_pushes_only_its_tenant(runtime, app, ann_client, olga_client,
                                                        other_tenant, tenant_admin,
                                                        other_admin):
    mine = add_phones(2)
    theirs = other_phone(runtime, other_tenant)
    token = csrf_token(ann_client, "/notify")
    page = ann_client.get("/notify").get_data(as_text=True)
    assert "Other Desk Secret" not in page and "Every phone" not in page  # system admins only
    # "all" for a tenant admin is its own tenant; the other tenant's phone is a 404.
    ann_client.post("/notify", data={"csrf_token": token, "mode": "all"})
    own = PushCampaign.get()
    assert own.tenant_id == default_tenant().id and own.total == 2
    assert sorted(t.device_id for t in PushTarget.select()) == mine
    assert ann_client.post("/notify", data={"csrf_token": token, "mode": "selected",
                                            "device_id": theirs.id}).status_code == 404
    assert ann_client.post("/notify", data={"csrf_token": token, "mode": "tenant",
                                            "tenant_id": other_tenant.id}).status_code == 404
    pasted = ann_client.post("/notify", data={"csrf_token": token, "mode": "selected",
                                              "phones": theirs.mac}, follow_redirects=True)
    assert f"no phone {theirs.mac}" in pasted.get_data(as_text=True)
    # Olga's push and Ann's are invisible to each other, in pages, JSON and the API.
    olga_token = csrf_token(olga_client, "/notify")
    olga_client.post("/notify", data={"csrf_token": olga_token, "mode": "all"})
    foreign = PushCampaign.get(PushCampaign.tenant == other_tenant.id)
    assert ann_client.get(f"/notify/campaigns/{foreign.id}").status_code == 404
    assert ann_client.get(f"/notify/campaigns/{foreign.id}.json").status_code == 404
    assert ann_client.post(f"/notify/campaigns/{foreign.id}/cancel",
                           data={"csrf_token": token}).status_code == 404
    assert [c["id"] for c in ann_client.get("/notify/campaigns.json").json["campaigns"]] == [
        own.id]
    client, headers = app.test_client(), bearer(runtime, tenant_admin)
    assert client.get(f"/api/v1/push-campaigns/{foreign.id}", headers=headers).status_code == 404
    assert client.post(f"/api/v1/push-campaigns/{foreign.id}/cancel",
                       headers=headers).status_code == 404
    r = client.post("/api/v1/push-campaigns", headers=headers,
                    json={"scope": "tenant", "tenant_id": other_tenant.id})
    assert r.status_code == 404
    r = client.post("/api/v1/push-campaigns", headers=headers,
                    json={"scope": "selected", "phone_ids": [theirs.id]})
    assert r.status_code == 404
    assert PushCampaign.get_by_id(foreign.id).state == "running"


def test_api_start_list_show_cancel_and_bad_input(runtime, app, sysadmin):
    phones = add_phones(4)
    client, headers = app.test_client(), bearer(runtime, sysadmin)
    started = client.post("/api/v1/push-campaigns", headers=headers,
                          json={"scope": "selected", "phone_ids": phones[:2],
                                "phones": ["80003"], "rate": 2.5})
    assert started.status_code == 202
    c = started.json["campaign"]
    assert (c["total"], c["rate"], c["state"], c["waiting"]) == (3, 2.5, "running", 3)
    assert [x["id"] for x in client.get("/api/v1/push-campaigns",
                                        headers=headers).json["campaigns"]] == [c["id"]]
    assert client.get(f"/api/v1/push-campaigns/{c['id']}",
                      headers=headers).json["campaign"]["total"] == 3
    cancelled = client.post(f"/api/v1/push-campaigns/{c['id']}/cancel", headers=headers)
    assert cancelled.json["campaign"]["cancelled"] == 3
    again = client.post(f"/api/v1/push-campaigns/{c['id']}/cancel", headers=headers)
    assert again.status_code == 409 and again.json["kind"] == "conflict"
    everything = client.post("/api/v1/push-campaigns", headers=headers, json={"scope": "all"})
    assert everything.json["campaign"]["total"] == 4
    for body, status, message in (
            ({"scope": "galaxy"}, 400, "scope must be one of"),
            ({"scope": "tenant"}, 400, "tenant_id must be a positive integer"),
            ({"scope": "selected"}, 400, "choose at least one phone"),
            ({"scope": "selected", "phone_ids": ["x"]}, 400, "phone_ids must be a list"),
            ({"scope": "selected", "phones": ["zz:zz"]}, 400, "neither a MAC"),
            ({"scope": "selected", "phones": ["80009"]}, 404, "no phone 80009"),
            ({"scope": "all", "rate": 0}, 400, "more than 0"),
            ({"scope": "all", "rate": "x"}, 400, "rate must be a number"),
            ({"scope": "tenant", "tenant_id": 99999}, 404, "no such tenant")):
        r = client.post("/api/v1/push-campaigns", headers=headers, json=body)
        assert (r.status_code, message in r.json["error"]) == (status, True), (body, r.json)
    assert PushCampaign.select().count() == 2
    assert client.get("/api/v1/push-campaigns/424242", headers=headers).status_code == 404
