"""A locked-out user in headless Chromium: "locked until …" on the users pages, Unlock."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hotdesk.calls.service import CallContext
from hotdesk.store.models import AuditEvent
from tests.conftest import make_device
from tests.web.browser import CHROMIUM, browser_page, hotdesk_web, sign_in
from tests.web.conftest import PASSWORD

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium not installed")


def test_unlock_button_in_a_real_browser(runtime, database_url, tmp_path: Path, sysadmin,
                                        alice):
    desk = make_device(runtime, mac="00:15:65:00:00:01", extension="8001", name="Desk 1")
    for n in range(runtime.config.policy.lockout_failures):
        ctx = CallContext(switch="asterisk", call_id=f"bad{n}", endpoint="8001")
        runtime.service.login(desk.id, "101", "0000", ctx)
    with hotdesk_web(database_url, tmp_path) as base, browser_page() as page:
        sign_in(page, base, "root", PASSWORD)
        page.goto(base + "/users")
        assert "locked until" in page.locator("#users-table, table").first.inner_text()
        page.goto(base + f"/users/{alice.id}")
        assert "locked until" in page.content()
        page.click("text=Unlock")
        page.wait_for_selector("text=unlocked")
        assert "locked until" not in page.content()
        page.goto(base + "/users")
        assert "locked until" not in page.content()
    assert AuditEvent.get(AuditEvent.action == "user_unlocked").actor == "admin:root"
    ctx = CallContext(switch="asterisk", call_id="good", endpoint="8001")
    assert runtime.service.login(desk.id, "101", "1234", ctx).outcome.value == "ok"
