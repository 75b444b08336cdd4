"""Headless Chromium against ``hotdesk web``: own API tokens, arming PnP, a sign-out that
kills the copied cookie, and the polish list (wrapping names, one search box, config
versions spelled out, formatted MACs, no "=None" in the audit, the logout time zone,
only the configured switch, a confirmed push-to-all, a favicon, an honest PnP push)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests

from hotdesk.admin import admins
from hotdesk.notify.push_models import PushCampaign
from hotdesk.ops import health
from hotdesk.store import audit
from hotdesk.store.models import ApiToken, Device
from tests.conftest import make_device
from tests.web.browser import CHROMIUM, browser_page, hotdesk_web, sign_in
from tests.web.conftest import PASSWORD

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium not installed")


def test_tokens_page_pnp_arm_and_signout_in_a_browser(runtime, database_url, tmp_path: Path,
                                                      sysadmin):
    desk = make_device(runtime, mac="00:15:65:12:34:03", extension="8001")
    Device.update(fetched_version=1, last_fetch_at=desk.created_at).where(
        Device.id == desk.id).execute()
    with hotdesk_web(database_url, tmp_path) as base, browser_page() as page:
        sign_in(page, base, "root", PASSWORD)
        page.click("nav >> text=root")
        page.wait_for_url(base + "/account/tokens")
        page.fill("#f-name", "grafana")
        page.select_option("#f-expires", "30")
        page.click("#token-form button[type=submit]")
        token = page.locator("#new-token").inner_text().strip()
        assert admins.admin_for_token(token).username == "root"
        assert requests.get(base + "/api/v1/phones", timeout=10,
                            headers={"Authorization": f"Bearer {token}"}).status_code == 200
        page.goto(base + "/account/tokens")
        row = page.locator("tr[data-token]")
        assert "grafana" in row.inner_text() and token not in page.content()
        assert "never" not in row.locator("td").nth(3).inner_text()  # just used
        page.once("dialog", lambda d: d.accept())
        row.locator("button").click()
        page.wait_for_selector(".alert-success")
        assert ApiToken.select().count() == 0 and admins.admin_for_token(token) is None

        page.goto(f"{base}/phones/{desk.id}")
        assert "closed" in page.locator("[data-pnp-state]").inner_text()
        page.click("[data-pnp-state] button")
        page.wait_for_selector(".alert-success")
        assert "armed until" in page.locator("[data-pnp-state]").inner_text()
        assert Device.get_by_id(desk.id).pnp_armed_until is not None

        # Sign-out ends the session on the server: the copied cookie no longer works.
        cookies = page.context.cookies()
        page.click("text=Sign out")
        page.wait_for_url(base + "/signin")
        page.context.add_cookies(cookies)
        page.goto(base + "/")
        assert page.url.startswith(base + "/signin")


def test_polish_list_in_a_browser(runtime, database_url, tmp_path: Path, sysadmin, alice):
    long_name = "W" * 100
    wide = make_device(runtime, mac="00:15:65:12:34:03", extension="8001", name=long_name)
    Device.update(config_version=4, fetched_version=2).where(Device.id == wide.id).execute()
    audit.record("session_started", actor="caller:101", extension="101", replaced=None)
    health.report("esl-inbound", "down", "connection refused", node="n1")
    with hotdesk_web(database_url, tmp_path) as base, browser_page() as page:
        sign_in(page, base, "root", PASSWORD)

        page.goto(base + "/phones")
        fits = page.evaluate("() => { const t = document.querySelector('#phones-table');"
                             " return t.scrollWidth <= t.parentElement.clientWidth; }")
        assert fits, "a long name pushes the table wider than the page"
        assert page.locator("[data-config-state]").inner_text() == "has v2, wants v4"

        page.goto(f"{base}/phones/{wide.id}/edit")
        assert page.input_value("#f-mac") == "00:15:65:12:34:03"
        assert page.get_attribute("#f-name", "maxlength") == "100"
        page.fill("#f-name", "")
        page.evaluate("document.querySelector('#f-name').removeAttribute('maxlength')")
        page.fill("#f-name", "N" * 300)
        page.click("main button[type=submit]")
        assert "name must be at most 100 characters" in page.content()
        assert Device.get_by_id(wide.id).display_name == long_name

        page.goto(base + "/users")
        assert page.locator("main input[type=search]").count() == 1

        page.goto(base + "/audit")
        assert "extension=101" in page.content() and "=None" not in page.content()

        page.goto(base + "/settings")
        assert "time zone UTC" in page.locator("[data-logout-timezone]").inner_text()
        assert "ESL" not in page.locator("main").inner_text()

        page.goto(base + "/notify")
        page.once("dialog", lambda d: d.dismiss())
        page.click("text=Push to all phones of the tenant")
        page.wait_for_timeout(300)
        assert page.url == base + "/notify" and PushCampaign.select().count() == 0
        page.once("dialog", lambda d: d.accept())
        page.click("text=Push to all phones of the tenant")
        page.wait_for_url("**/notify/campaigns/**")
        assert PushCampaign.get().total == Device.select().count()

        icon = page.get_attribute("link[rel=icon]", "href")
        answer = requests.get(base + icon, timeout=10)
        assert answer.status_code == 200 and "svg" in answer.headers["Content-Type"]

        # A PnP phone never discovered: the push did nothing, which is not a success.
        page.goto(base + "/phones/new")
        page.fill("#f-mac", "00:15:65:ab:cd:ef")
        page.fill("#f-extension", "8050")
        page.fill("#f-sip_password", "idle-pass-8050")
        page.click("main button[type=submit]")
        page.wait_for_selector("[data-prov-url]")
        notice = page.locator(".alert", has_text="PnP URL push")
        assert "phone not yet seen" in notice.inner_text()
        assert "alert-success" not in (notice.get_attribute("class") or "")
