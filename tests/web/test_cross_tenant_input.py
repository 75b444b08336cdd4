"""A tenant administrator adding a MAC that another tenant holds learns nothing about
that tenant (the duplicate is still refused), and NUL characters in JSON are a 400 as
in forms."""

from __future__ import annotations

import pytest

from hotdesk.store.models import Device, User
from tests.conftest import make_device
from tests.web.conftest import bearer, csrf_token, other_phone

SECRETS = ("Other Corp", "other.example", "Other Desk Secret", "9001", "tenant 2")


def test_api_duplicate_mac_of_another_tenant_leaks_nothing(runtime, app, tenant_admin,
                                                           other_tenant):
    theirs = other_phone(runtime, other_tenant)
    make_device(runtime, mac="00:15:65:00:00:aa", extension="8001")
    client = app.test_client()
    headers = bearer(runtime, tenant_admin)
    foreign = client.post("/api/v1/phones", headers=headers, json={
        "mac": "00-15-65-BB-BB-01", "extension": "8090", "sip_password": "x"})
    own = client.post("/api/v1/phones", headers=headers, json={
        "mac": "00-15-65-00-00-AA", "extension": "8091", "sip_password": "x"})
    assert foreign.status_code == own.status_code == 409
    # Same words whichever tenant holds it; only the MAC the admin typed differs.
    assert foreign.json["error"].replace("BB:BB:01", "00:00:AA") == own.json["error"]
    assert not any(s in foreign.get_data(as_text=True) for s in SECRETS)
    assert Device.get_by_id(theirs.id).tenant_id == other_tenant.id
    assert Device.select().where(Device.idle_extension == "8090").count() == 0


def test_form_duplicate_mac_of_another_tenant_leaks_nothing(runtime, app, ann_client,
                                                            other_tenant):
    other_phone(runtime, other_tenant)
    response = ann_client.post("/phones/new", data={
        "csrf_token": csrf_token(ann_client, "/phones/new"), "mac": "001565bbbb01",
        "extension": "8090", "sip_password": "x", "method": "pnp", "network": "lan",
        "vendor": "yealink"})
    text = response.get_data(as_text=True)
    assert response.status_code == 409  # as for a duplicate within the tenant
    assert "MAC 00:15:65:BB:BB:01 is already registered to a phone" in text
    assert not any(s in text for s in SECRETS[:3])


@pytest.mark.parametrize("body", [
    {"extension": "5000", "name": "Nul\x00name"},
    {"extension": "50\x0001"},
    {"extension": "5002", "name\x00": "x"},
])
def test_nul_in_api_json_is_refused_and_nothing_stored(runtime, app, tenant_admin, body):
    response = app.test_client().post("/api/v1/users", headers=bearer(runtime, tenant_admin),
                                      json=body)
    assert response.status_code == 400
    assert "NUL characters are not allowed" in response.json["error"]
    assert User.select().count() == 0


def test_nul_nested_in_a_list_is_refused(runtime, app, tenant_admin):
    response = app.test_client().post("/api/v1/notify", headers=bearer(runtime, tenant_admin),
                                      json={"phone_ids": [1], "note": ["a\x00"]})
    assert response.status_code == 400
