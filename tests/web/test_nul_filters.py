"""NUL bytes in list filters: PostgreSQL text cannot hold them, so they must never reach a
query (schemathesis found ``/api/v1/audit?action=%00`` answered 500 on PostgreSQL)."""

from __future__ import annotations

from tests.web.conftest import bearer, client_for


def test_nul_in_audit_and_user_filters_is_no_server_error(app, runtime, sysadmin, alice):
    api = app.test_client()
    headers = bearer(runtime, sysadmin)
    for query in ("action=%00", "user=1%000", "phone=%00"):
        r = api.get(f"/api/v1/audit?{query}", headers=headers)
        assert r.status_code == 200 and r.json["events"] == [], query
    r = api.get("/api/v1/users?q=10%001", headers=headers)
    assert r.status_code == 200 and [u["extension"] for u in r.json["users"]] == ["101"]
    page = client_for(app, sysadmin)
    assert page.get("/users?q=%00").status_code == 200
    assert page.get("/audit?action=%00").status_code == 200
