"""Every page renders for a signed-in admin, and redirects to sign-in without one."""

from __future__ import annotations

import pytest

from hotdesk.calls.service import CallContext

PAGES = ["/", "/phones", "/phones/new", "/discovered", "/users", "/users/new",
         "/users/import", "/sessions", "/notify", "/audit", "/settings"]


@pytest.mark.parametrize("path", PAGES)
def test_page_needs_sign_in(app, path):
    response = app.test_client().get(path)
    assert response.status_code == 302
    assert "/signin" in response.headers["Location"]


def test_every_page_renders_with_data(runtime, root_client, alice, desk):
    ctx = CallContext(switch="asterisk", call_id="c1", endpoint="8001", source="192.0.2.1:5060")
    assert runtime.service.login(desk.id, "101", "1234", ctx).outcome.value == "ok"
    runtime.service.login(desk.id, "101", "0000", ctx)
    for path in PAGES + [f"/phones/{desk.id}", f"/phones/{desk.id}/edit",
                         f"/users/{alice.id}"]:
        response = root_client.get(path)
        assert response.status_code == 200, (path, response.get_data(as_text=True)[:2000])
        assert "hotdesk" in response.get_data(as_text=True)


def test_dashboard_shows_every_loops_heartbeat(root_client):
    from hotdesk.ops import health

    health.report("agi-drain", "down", "failed: RuntimeError: boom; restarting in 1s",
                  node="pbx-1")
    health.report("worker", "up", "expired=0", node="pbx-2")
    page = root_client.get("/").get_data(as_text=True)
    assert 'data-component="agi-drain"' in page and 'data-component="worker"' in page
    row = page.split('data-component="agi-drain"', 1)[1].split("</tr>", 1)[0]
    assert ">down<" in row and "RuntimeError: boom" in row and "pbx-1" in row


def test_phones_page_warns_about_a_model_in_no_list(runtime, root_client):
    from tests.conftest import make_device

    make_device(runtime, mac="00:15:65:00:0c:01", extension="8401", model="T99Z")
    make_device(runtime, mac="00:15:65:00:0c:02", extension="8402", model="T46U")
    page = root_client.get("/phones").get_data(as_text=True)
    assert page.count("model-warning") == 1
    assert "model &#39;T99Z&#39; is not in a model list" in page
