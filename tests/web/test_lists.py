"""The long lists (phones, users, sessions, audit; pages and API) are paged, sorted and
filtered by the database: right rows, in a stable order, within the admin's tenants,
bad parameters refused with a message, and a number of queries per page that does not
grow with the number of rows."""

from __future__ import annotations

import re

import pytest

from hotdesk.admin.inventory import default_tenant
from hotdesk.store.models import AuditEvent, Device, Tenant, User
from tests.web import fleet
from tests.web.conftest import bearer

ROW_LINK = {"phones": re.compile(r'href="/phones/(\d+)"'),
            "users": re.compile(r'href="/users/(\d+)"'),
            "sessions": re.compile(r'data-session="(\d+)"')}


def page_ids(client, url: str, kind: str) -> list[int]:  # type: ignore[no-untyped-def]
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return [int(x) for x in ROW_LINK[kind].findall(response.get_data(as_text=True))]


def api(client, headers, url: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.json
    return response.json


@pytest.fixture
def phones(runtime):  # type: ignore[no-untyped-def]
    """120 phones of the default tenant; every third one shares the vendor "snom"."""
    tenant = default_tenant()
    made = fleet.add_phones(tenant, 120)
    Device.update(vendor="snom").where(Device.id.in_([d.id for d in made[::3]])).execute()
    return made


def test_phones_page_pages_sorts_and_filters(root_client, phones):
    first = page_ids(root_client, "/phones", "phones")
    assert len(first) == 50
    # Default order: idle extension, as before; page 3 holds the last 20.
    by_extension = [d.id for d in sorted(phones, key=lambda d: d.idle_extension)]
    assert first == by_extension[:50]
    assert page_ids(root_client, "/phones?page=3", "phones") == by_extension[100:]
    assert page_ids(root_client, "/phones?page=4", "phones") == []
    text = root_client.get("/phones?page=2").get_data(as_text=True)
    assert "51–100 of 120 phones" in text and "page 2 of 3" in text

    newest_name = page_ids(root_client, "/phones?sort=-name&per_page=5", "phones")
    assert newest_name == [d.id for d in phones[::-1][:5]]
    assert page_ids(root_client, "/phones?q=Desk%2011", "phones") == \
        [d.id for d in phones[110:120]]
    # A MAC in any spelling finds its phone; case does not matter in names.
    mac = phones[42].mac
    spelled = "-".join(mac[i:i + 2] for i in range(0, 12, 2)).upper()
    assert page_ids(root_client, f"/phones?q={spelled}", "phones") == [phones[42].id]
    assert page_ids(root_client, "/phones?q=desk%20042", "phones") == [phones[42].id]
    # Links keep the filter and sort.
    text = root_client.get("/phones?q=Desk&sort=-name&per_page=10").get_data(as_text=True)
    assert "/phones?q=Desk&amp;sort=-name&amp;per_page=10&amp;page=2" in text


def test_sorting_on_a_shared_value_never_repeats_or_loses_a_row(root_client, phones):
    """40 phones share the vendor "snom": the id breaks ties, so pages join up exactly."""
    seen: list[int] = []
    for page in range(1, 9):  # 120 rows, 17 a page: 8 pages
        seen += page_ids(root_client, f"/phones?sort=vendor&per_page=17&page={page}",
                         "phones")
    assert sorted(seen) == sorted(d.id for d in phones) and len(seen) == len(set(seen))
    snom = sorted(d.id for d in phones[::3])
    assert seen[:40] == snom  # "snom" < "yealink", ties by id ascending


def test_users_page(root_client, runtime):
    users = fleet.add_users(default_tenant(), 75)
    assert page_ids(root_client, "/users", "users") == [u.id for u in users[:50]]
    assert page_ids(root_client, "/users?page=2", "users") == [u.id for u in users[50:]]
    assert page_ids(root_client, "/users?sort=-name&per_page=3", "users") == \
        [u.id for u in users[::-1][:3]]
    assert page_ids(root_client, "/users?q=user%2007", "users") == [u.id for u in users[70:75]]
    assert page_ids(root_client, f"/users?q={users[3].extension}", "users") == [users[3].id]


def test_sessions_page_shows_phone_and_user_and_filters(root_client, runtime):
    tenant = default_tenant()
    devices = fleet.add_phones(tenant, 60)
    users = fleet.add_users(tenant, 60)
    fleet.log_in(list(zip(devices, users, strict=True)))
    newest_first = page_ids(root_client, "/sessions", "sessions")
    assert len(newest_first) == 50
    text = root_client.get("/sessions?q=User%20059").get_data(as_text=True)
    assert "Desk 059" in text and "User 059" in text and text.count("data-session=") == 1
    assert "00:15:65:01:00:3b" in text.lower()  # its MAC (0x3b = 59)
    by_user = page_ids(root_client, "/sessions?sort=-user&per_page=60", "sessions")
    assert len(by_user) == 60 and by_user[0] == max(by_user)  # user 059 logged in last
    assert page_ids(root_client, f"/sessions?q={devices[7].mac[-4:]}", "sessions") == \
        page_ids(root_client, "/sessions?q=Desk%20007", "sessions")


def test_audit_page_and_api_page_with_filters(runtime, app, sysadmin, root_client):
    tenant = default_tenant()
    devices = fleet.add_phones(tenant, 3)
    users = fleet.add_users(tenant, 3)
    fleet.audit([(devices[i % 3], users[i % 3], ("login", "logout")[i % 2]) for i in range(130)])
    text = root_client.get("/audit?per_page=20&page=2&action=login").get_data(as_text=True)
    assert "21–40 of 65 events" in text
    assert "action=login" in text.split("Next")[0].rsplit("href=", 1)[-1]
    client, headers = app.test_client(), bearer(runtime, sysadmin)
    body = api(client, headers, f"/api/v1/audit?user={users[1].extension}&per_page=10")
    assert body["total"] == 43 and len(body["events"]) == 10 and body["pages"] == 5
    assert {e["user_id"] for e in body["events"]} == {users[1].id}
    ats = [e["at"] for e in body["events"]]
    assert ats == sorted(ats, reverse=True)
    by_action = api(client, headers, "/api/v1/audit?sort=action&per_page=100&page=2")
    assert [e["action"] for e in by_action["events"]][-1] == "logout"


def test_api_lists_page_with_fields_and_link_header(runtime, app, sysadmin):
    tenant = default_tenant()
    devices = fleet.add_phones(tenant, 130)
    users = fleet.add_users(tenant, 30)
    fleet.log_in(list(zip(devices, users, strict=False)))
    client, headers = app.test_client(), bearer(runtime, sysadmin)
    body = api(client, headers, "/api/v1/phones")
    assert body["total"] == 130 and body["per_page"] == 100 and body["pages"] == 2
    assert [p["id"] for p in body["phones"]] == [d.id for d in devices[:100]]  # by id
    assert body["previous"] is None and body["next"].endswith("/api/v1/phones?page=2")
    response = client.get("/api/v1/phones", headers=headers)
    assert '<http://localhost/api/v1/phones?page=2>; rel="next"' in response.headers["Link"]
    rest = api(client, headers, body["next"].removeprefix("http://localhost"))
    assert [p["id"] for p in rest["phones"]] == [d.id for d in devices[100:]]
    assert rest["next"] is None
    in_use = [p for p in body["phones"] if p["state"] == "in_use"]
    assert len(in_use) == 30 and in_use[0]["user"] == users[0].extension

    found = api(client, headers, "/api/v1/phones?q=desk%2012&sort=-name")
    assert [p["name"] for p in found["phones"]][:2] == ["Desk 129", "Desk 128"]
    assert found["total"] == 10  # Desk 120..129

    people = api(client, headers, "/api/v1/users?per_page=7&sort=-extension")
    assert [u["id"] for u in people["users"]] == [u.id for u in users[::-1][:7]]
    assert people["users"][0]["logged_in_on"] == [devices[29].id]
    assert api(client, headers, "/api/v1/users?q=User%20001")["total"] == 1

    active = api(client, headers, "/api/v1/sessions?per_page=5")
    assert active["total"] == 30 and [s["phone_id"] for s in active["sessions"]] == \
        [d.id for d in devices[:5]]
    assert api(client, headers, "/api/v1/sessions?q=User%20003")["sessions"][0][
        "extension"] == users[3].extension


BAD = [("page=0", "page must be a whole number"), ("page=abc", "page must be a whole number"),
       ("page=-1", "page must be a whole number"), ("page=1e3", "page must be a whole number"),
       ("page=99999999999999999999", "page must be a whole number"),
       ("per_page=501", "per_page must be a whole number from 1 to 500"),
       ("per_page=0", "per_page must be"), ("sort=pin_hash", "sort must be one of"),
       ("sort=-", "sort must be one of"), ("sort=name;drop", "sort must be one of")]


@pytest.mark.parametrize("path", ["/phones", "/users", "/sessions", "/audit"])
def test_bad_list_parameters_are_400_with_the_reason(runtime, app, sysadmin, root_client,
                                                     path):
    client, headers = app.test_client(), bearer(runtime, sysadmin)
    for query, reason in BAD:
        if path == "/audit" and query.startswith("sort=name"):
            query = "sort=actor"
        page = root_client.get(f"{path}?{query}")
        assert page.status_code == 400 and reason in page.get_data(as_text=True), query
        answer = client.get(f"/api/v1{path}?{query}", headers=headers)
        assert answer.status_code == 400 and reason in answer.json["error"], query
    assert root_client.get(f"{path}?q=%25_%5C&sort=-id&per_page=500").status_code == 200


@pytest.fixture
def two_tenants(runtime, other_tenant):  # type: ignore[no-untyped-def]
    """Both tenants have phones, users, sessions and audit rows; the other tenant's sort
    first by name ("Aardvark") and match the same searches."""
    mine = default_tenant()
    out = {}
    for tenant, name in ((mine, "Desk"), (other_tenant, "Aardvark")):
        devices = fleet.add_phones(tenant, 30, name=name)
        users = fleet.add_users(tenant, 30, name=name)
        fleet.log_in(list(zip(devices, users, strict=True)))
        fleet.activity(devices, users)
        out[tenant.id] = {"phones": {d.id for d in devices}, "users": {u.id for u in users}}
    return out


def test_tenant_admin_sees_only_own_rows_whatever_the_page_sort_or_filter(
        runtime, app, tenant_admin, ann_client, two_tenants, other_tenant):
    mine = two_tenants[default_tenant().id]
    theirs = two_tenants[other_tenant.id]
    client, headers = app.test_client(), bearer(runtime, tenant_admin)
    for sort in ("name", "-name", "mac", "-extension", "vendor"):
        seen: set[int] = set()
        for page in (1, 2, 3):
            seen |= set(page_ids(ann_client, f"/phones?sort={sort}&per_page=12&page={page}",
                                 "phones"))
        assert seen == mine["phones"], sort
    for q in ("Aardvark", "001565", "T54W", "7"):
        assert set(page_ids(ann_client, f"/phones?q={q}&per_page=500", "phones")) <= \
            mine["phones"]
        assert {p["id"] for p in api(client, headers, f"/api/v1/phones?q={q}&per_page=500")
                ["phones"]} <= mine["phones"]
    body = api(client, headers, "/api/v1/phones?sort=name&per_page=500")
    assert body["total"] == 30 and {p["id"] for p in body["phones"]} == mine["phones"]
    assert not set(page_ids(ann_client, "/users?sort=name&q=a&per_page=500", "users")) \
        & theirs["users"]
    users = api(client, headers, "/api/v1/users?sort=name&per_page=500")
    assert {u["id"] for u in users["users"]} == mine["users"] and users["total"] == 30
    sessions = api(client, headers, "/api/v1/sessions?sort=user&per_page=500&q=a")
    assert {s["phone_id"] for s in sessions["sessions"]} <= mine["phones"]
    assert api(client, headers, "/api/v1/sessions")["total"] == 30
    events = api(client, headers, "/api/v1/audit?sort=action&per_page=500")
    own = AuditEvent.select().where(AuditEvent.tenant == default_tenant()).count()
    assert events["total"] == own and {e["phone_id"] for e in events["events"]} <= \
        mine["phones"] | {None}
    ext = User.get_by_id(next(iter(theirs["users"]))).extension
    assert api(client, headers, f"/api/v1/audit?user={ext}")["total"] == 0
    page = ann_client.get("/sessions?sort=phone&per_page=500").get_data(as_text=True)
    assert "Aardvark" not in page and page.count("data-session=") == 30
    assert "Aardvark" not in ann_client.get("/audit?per_page=500").get_data(as_text=True)


class QueryCounter:
    """Counts the SQL statements the database runs (every query goes through
    ``execute_sql``)."""

    def __init__(self, db, monkeypatch) -> None:  # type: ignore[no-untyped-def]
        self.statements: list[str] = []
        real = db.execute_sql

        def counting(sql, params=None, *args, **kwargs):  # type: ignore[no-untyped-def]
            self.statements.append(sql)
            return real(sql, params, *args, **kwargs)
        monkeypatch.setattr(db, "execute_sql", counting)

    def during(self, fetch) -> int:  # type: ignore[no-untyped-def]
        self.statements.clear()
        fetch()
        return len(self.statements)


LISTS = ["/phones", "/users", "/sessions", "/audit", "/api/v1/phones", "/api/v1/users",
         "/api/v1/sessions", "/api/v1/audit"]


def test_a_page_costs_the_same_number_of_queries_for_5_or_60_rows(
        runtime, app, sysadmin, root_client, monkeypatch):
    """No query per row: growing every list from 5 to 60 rows (all on one page, with a
    session, a call, a registration and audit rows each) leaves each page's statement
    count unchanged."""
    tenant = default_tenant()
    client, headers = app.test_client(), bearer(runtime, sysadmin)
    counter = QueryCounter(runtime.db, monkeypatch)

    def costs() -> dict[str, int]:
        out = {}
        for path in LISTS:
            url = f"{path}?per_page=100"
            get = (lambda u=url: client.get(u, headers=headers)) if path.startswith("/api") \
                else (lambda u=url: root_client.get(u))
            assert get().status_code == 200  # warm: sign-in bookkeeping, caches
            out[path] = counter.during(get)
        return out

    def grow(start: int, count: int) -> None:
        devices = fleet.add_phones(tenant, count, start=start)
        users = fleet.add_users(tenant, count, start=start)
        fleet.log_in(list(zip(devices, users, strict=True)))
        fleet.activity(devices, users)

    grow(0, 5)
    small = costs()
    grow(5, 55)
    assert Tenant.select().count() >= 1 and Device.select().count() == 60
    large = costs()
    assert large == small, {p: (small[p], large[p]) for p in LISTS if small[p] != large[p]}
    assert all(n <= 20 for n in large.values()), large


def test_switching_hot_desking_from_the_list_returns_to_the_same_page(root_client, runtime):
    users = fleet.add_users(default_tenant(), 60)
    url = "/users?q=User&sort=-name&page=2"
    text = root_client.get(url).get_data(as_text=True)
    action = f"/users/{users[9].id}/hotdesk?q=User&amp;sort=-name&amp;page=2"
    assert action in text
    token = re.search(r'name="csrf_token" value="([^"]+)"', text).group(1)
    answer = root_client.post(action.replace("&amp;", "&"),
                              data={"csrf_token": token, "back": "list", "enable": "0"})
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/users?q=User&sort=-name&page=2"
    assert User.get_by_id(users[9].id).hotdesk_enabled is False
