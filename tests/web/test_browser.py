"""End to end in headless Chromium against ``hotdesk web``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hotdesk.admin.inventory import default_tenant
from hotdesk.calls.service import CallContext
from hotdesk.notify.push_models import PushTarget
from hotdesk.store.models import Device, Session
from tests.conftest import make_device
from tests.web.browser import CHROMIUM, browser_page, hotdesk_web, sign_in
from tests.web.conftest import PASSWORD, other_phone

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium not installed")


def test_admin_journey_in_a_real_browser(runtime, database_url, tmp_path: Path, sysadmin,
                                         other_admin, other_tenant, alice):
    assert default_tenant().sip_domain == "default"
    desk = make_device(runtime, mac="00:15:65:00:00:01", extension="8001", name="Desk 1")
    ctx = CallContext(switch="asterisk", call_id="b1", endpoint="8001")
    assert runtime.service.login(desk.id, "101", "1234", ctx).outcome.value == "ok"
    foreign = other_phone(runtime, other_tenant)
    with hotdesk_web(database_url, tmp_path) as base, browser_page() as page:
        sign_in(page, base, "root", PASSWORD)
        assert page.locator("[data-count=in_use]").inner_text() == "1"

        # Add a phone through the form; it then shows in the list.
        page.goto(base + "/phones/new")
        page.fill("#f-mac", "00-15-65-AB-CD-EF")
        page.fill("#f-name", "Reception")
        page.fill("#f-extension", "8050")
        page.fill("#f-sip_password", "idle-pass-8050")
        page.fill("#f-model", "T54W")
        page.click("main button[type=submit]")
        page.wait_for_selector("[data-prov-url]")
        assert "check-sync NOTIFY queued" in page.content()
        page.goto(base + "/phones")
        row = page.locator("tr[data-mac='001565abcdef']")
        assert "Reception" in row.inner_text() and "pending" in row.inner_text()
        # The search box asks the server (the list is paged there), keeping the sort.
        page.click("#phones-table a[data-sort-key=name]")
        page.wait_for_url("**/phones?sort=name")
        page.fill("input.list-search", "recep")
        page.press("input.list-search", "Enter")
        page.wait_for_url("**/phones?q=recep&sort=name")
        assert page.locator("#phones-table tbody tr").count() == 1
        assert "Reception" in page.locator("#phones-table tbody").inner_text()

        # Force a logout from the sessions page (confirm dialog accepted).
        page.goto(base + "/sessions")
        page.once("dialog", lambda d: d.accept())
        page.click("tr[data-session] button")
        page.wait_for_selector(".alert-success")
        assert Session.get(Session.device == desk).end_reason == "admin"

        # Push a check-sync to the new phone: a paced push whose page follows its progress.
        page.goto(base + "/notify")
        new_id = Device.get(Device.mac == "001565abcdef").id
        page.check(f"input[name=device_id][value='{new_id}']")
        page.click("#notify-form button[type=submit]")
        page.wait_for_selector("#push-campaigns tr[data-campaign-id]")
        page.wait_for_function("document.querySelector('[data-poll-state]').textContent"
                               ".startsWith('about')")
        assert "waiting 1" in page.locator("[data-col='counts']").first.inner_text()
        assert [t.device_id for t in PushTarget.select()] == [new_id]

        # A tenant administrator of another tenant cannot reach the phone: 404.
        page.click("text=Sign out")
        page.wait_for_url(base + "/signin")
        sign_in(page, base, "olga", PASSWORD)
        response = page.goto(f"{base}/phones/{new_id}")
        assert response.status == 404
        response = page.goto(f"{base}/phones/{foreign.id}")
        assert response.status == 200 and "Other Desk Secret" in page.content()
