"""The registration next to the expected account: the API, the phones pages in headless
Chromium, and `hotdesk device list` / `hotdesk status`."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from hotdesk.calls.service import CallContext
from hotdesk.ops import status
from hotdesk.store.models import utcnow
from hotdesk.switch import registrations as regs
from tests.conftest import make_device
from tests.web.browser import CHROMIUM, browser_page, hotdesk_web, sign_in
from tests.web.conftest import PASSWORD, bearer


def three_phones(runtime, alice):  # type: ignore[no-untyped-def]
    """Desk 1 registered as expected; Desk 2 logged in as 101 but still registered as its
    idle account; Desk 3 refused by the switch; Desk 4 not registered."""
    now = utcnow()
    d1 = make_device(runtime, mac="00:15:65:00:00:01", extension="8001", name="Desk 1")
    d2 = make_device(runtime, mac="00:15:65:00:00:02", extension="8002", name="Desk 2")
    d3 = make_device(runtime, mac="00:15:65:00:00:03", extension="8003", name="Desk 3")
    d4 = make_device(runtime, mac="00:15:65:00:00:04", extension="8004", name="Desk 4")
    ctx = CallContext(switch="asterisk", call_id="w1", endpoint="8002", source="10.0.0.2:5060")
    assert runtime.service.login(d2.id, "101", "1234", ctx).outcome.value == "ok"
    regs.apply([
        regs.ContactSeen("8001", "sip:8001@10.0.0.1:5060", "10.0.0.1:5060",
                         now - timedelta(minutes=3)),
        regs.ContactSeen("8002", "sip:8002@10.0.0.2:5060", "10.0.0.2:5060", now),
        regs.AuthRefused("8003", "10.0.0.3:5060", "wrong password", now),
    ], "asterisk")
    return d1, d2, d3, d4


def test_api_shows_registration_next_to_expected_account(runtime, app, sysadmin, alice):
    d1, d2, d3, d4 = three_phones(runtime, alice)
    client, headers = app.test_client(), bearer(runtime, sysadmin)
    phones = {p["id"]: p["registration"] for p in
              client.get("/api/v1/phones", headers=headers).json["phones"]}
    assert phones[d1.id]["state"] == "registered" and phones[d1.id]["ok"] is True
    assert (phones[d1.id]["account"], phones[d1.id]["address"]) == ("8001", "10.0.0.1:5060")
    assert 170 <= phones[d1.id]["age_seconds"] <= 300
    assert phones[d2.id] | {"since": None, "age_seconds": None} == {
        "state": "mismatch", "label": "wrong account", "ok": False,
        "expected_account": "101", "account": "8002", "address": "10.0.0.2:5060",
        "since": None, "expires_at": None, "age_seconds": None, "failure_reason": None,
        "failure_at": None}
    assert (phones[d3.id]["state"], phones[d3.id]["label"], phones[d3.id]["failure_reason"]) \
        == ("rejected", "credentials rejected", "wrong password")
    assert (phones[d4.id]["state"], phones[d4.id]["account"]) == ("unregistered", None)
    one = client.get(f"/api/v1/phones/{d2.id}", headers=headers).json["phone"]
    assert one["registration"]["state"] == "mismatch"


def test_status_and_device_list_show_the_mismatch(runtime, alice, capsys):
    three_phones(runtime, alice)
    text = status.render(status.collect())
    assert "Registrations (not watched right now): 1 as expected, 1 wrong account, " \
           "1 credentials rejected, 1 not registered" in text
    assert "WRONG ACCOUNT 8002 @ 10.0.0.2:5060" in text and "expects 101" in text
    assert "credentials rejected: wrong password" in text
    from hotdesk_cli.core_commands import cmd_device_list

    class Args:
        cfg = runtime.config

    cmd_device_list(Args())  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert "REGISTRATION" in out.splitlines()[0]
    line = next(line for line in out.splitlines() if "Desk 1" in line)
    assert "8001 @ 10.0.0.1:5060 for 3m (expects 8001)" in line


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium not installed")
def test_phones_page_shows_a_mismatch_at_a_glance(runtime, database_url, tmp_path: Path,
                                                  sysadmin, alice):
    d1, d2, d3, d4 = three_phones(runtime, alice)
    with hotdesk_web(database_url, tmp_path) as base, browser_page() as page:
        sign_in(page, base, "root", PASSWORD)
        page.goto(base + "/phones")
        cell = page.locator("tr[data-mac='001565000001'] [data-registration]")
        assert cell.get_attribute("data-registration") == "registered"
        assert "8001" in cell.inner_text() and "10.0.0.1:5060" in cell.inner_text()
        assert "expected" not in cell.inner_text()
        wrong = page.locator("tr[data-mac='001565000002'] [data-registration]")
        assert wrong.get_attribute("data-registration") == "mismatch"
        assert "expected 101" in wrong.inner_text()
        badge = wrong.locator(".badge")
        assert "text-bg-danger" in badge.get_attribute("class")
        # Red, unlike the registered one: visible at a glance.
        colour = badge.evaluate("e => getComputedStyle(e).backgroundColor")
        ok_colour = cell.locator(".badge").evaluate("e => getComputedStyle(e).backgroundColor")
        assert colour != ok_colour
        rejected = page.locator("tr[data-mac='001565000003'] [data-registration]")
        assert "credentials rejected" in rejected.inner_text()
        assert "wrong password" in rejected.inner_text()
        page.goto(base + f"/phones/{d2.id}")
        detail = page.locator("[data-registration]")
        assert detail.get_attribute("data-registration") == "mismatch"
        assert "expected 101" in detail.inner_text()
