"""The emergency location form, its API, and the dashboard's emergency-call banner (the
banner also in headless Chromium: it appears by itself and sounds the alarm)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hotdesk.calls.service import CallContext
from hotdesk.emergency import locations, notices
from hotdesk.emergency.models import EmergencySync
from tests.web.browser import CHROMIUM, browser_page, hotdesk_web, sign_in
from tests.web.conftest import PASSWORD, bearer, csrf_token


def test_the_form_saves_a_location_and_marks_the_switch_copy(root_client, desk):
    url = f"/phones/{desk.id}/location"
    assert b"Callback number (ELIN)" in root_client.get(url).data
    token = csrf_token(root_client, url)
    r = root_client.post(url, data={"csrf_token": token, "country": "us", "city": "Springfield",
                                    "floor": "3", "room": "3.01", "callback": "+15550100"})
    assert r.status_code == 302
    saved = locations.desk_location(desk.id)
    assert (saved.country, saved.room, saved.callback) == ("US", "3.01", "+15550100")
    assert EmergencySync.get(EmergencySync.endpoint == desk.idle_sip_username).pending
    assert b"Emergency location" in root_client.get(f"/phones/{desk.id}").data


def test_bad_input_is_refused_with_the_field_named_and_nothing_saved(root_client, desk):
    url = f"/phones/{desk.id}/location"
    token = csrf_token(root_client, url)
    r = root_client.post(url, data={"csrf_token": token, "room": "3/01", "floor": "3"})
    assert r.status_code == 400 and b"room: must not contain" in r.data
    assert b'value="3"' in r.data  # what was typed is kept
    assert locations.desk_location(desk.id) is None


def test_tenant_default_form(root_client):
    token = csrf_token(root_client, "/emergency/default")
    r = root_client.post("/emergency/default", data={"csrf_token": token, "country": "DE",
                                                     "city": "Berlin"})
    assert r.status_code == 302
    assert EmergencySync.get(EmergencySync.endpoint == "").pending


def test_api_reads_and_writes_a_location(runtime, app, sysadmin, desk):
    client, headers = app.test_client(), bearer(runtime, sysadmin)
    assert client.get(f"/api/v1/phones/{desk.id}/location", headers=headers).json == \
        {"location": None}
    r = client.put(f"/api/v1/phones/{desk.id}/location", headers=headers,
                   json={"floor": "3", "room": "3.01", "callback": "+15550100"})
    assert r.status_code == 200 and r.json["location"]["room"] == "3.01"
    r = client.put(f"/api/v1/phones/{desk.id}/location", headers=headers, json={"floor": 3})
    assert r.status_code == 400 and r.json["error"] == "floor must be a string"
    r = client.put(f"/api/v1/phones/{desk.id}/location", headers=headers,
                   json={"callback": "ring me"})
    assert r.status_code == 400 and "callback" in r.json["error"]
    assert locations.desk_location(desk.id).room == "3.01"
    assert client.get(f"/api/v1/phones/{desk.id}/location").status_code == 401


def test_active_calls_feed_the_banner(runtime, root_client, alice, desk):
    assert root_client.get("/emergency/active").json == {"calls": []}
    runtime.service.login(desk.id, "101", "1234",
                          CallContext(switch="asterisk", call_id="c", endpoint="8001"))
    notices.handle(notices.SeenCall(switch="asterisk", call_id="e1", endpoint="101",
                                    number="911"), runtime.config.emergency)
    [call] = root_client.get("/emergency/active").json["calls"]
    assert (call["user"], call["desk"], call["call_id"]) == ("Alice", "Desk 8001", "e1")
    assert b'id="emergency-banner"' in root_client.get("/").data


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium not installed")
def test_banner_appears_by_itself_and_sounds_in_a_real_browser(runtime, database_url,
                                                               tmp_path: Path, sysadmin,
                                                               alice, desk):
    with hotdesk_web(database_url, tmp_path) as base, browser_page() as page:
        page.add_init_script("""
            window.__beeps = 0;
            const Real = window.AudioContext;
            window.AudioContext = function () {
              const ctx = new Real();
              const make = ctx.createOscillator.bind(ctx);
              ctx.createOscillator = function () { window.__beeps += 1; return make(); };
              return ctx;
            };""")
        sign_in(page, base, "root", PASSWORD)
        assert page.locator("#emergency-banner").is_hidden()
        runtime.service.login(desk.id, "101", "1234",
                              CallContext(switch="asterisk", call_id="c", endpoint="8001"))
        notices.handle(notices.SeenCall(switch="asterisk", call_id="e2", endpoint="101",
                                        number="911"), runtime.config.emergency)
        page.wait_for_selector("#emergency-banner [data-call=e2]", timeout=5000)
        text = page.locator("#emergency-banner").inner_text()
        assert "EMERGENCY CALL to 911 from Alice (101)" in text and "Desk 8001" in text
        page.wait_for_function("window.__beeps >= 3", timeout=5000)
