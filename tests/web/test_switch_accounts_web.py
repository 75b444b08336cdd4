"""The web form and the API create (and remove) the idle account on Asterisk; the admin
sees the switch's sync state and errors."""

from __future__ import annotations

import dataclasses

import pytest

from hotdesk.settings import AmiConfig
from hotdesk.store.models import Device
from tests.fakes.asterisk_accounts import AccountsAMI, ThreadedAMI
from tests.web.conftest import bearer, csrf_token
from webadmin.app import create_app

SECRET = "web-ami-secret"
PHONE = {"mac": "00 15 65 AA BB 01", "name": "Desk 21", "method": "pnp", "network": "lan",
         "extension": "8021", "sip_password": "", "vendor": "yealink", "model": "T54W"}


@pytest.fixture
def ami(tmp_path):
    fake = AccountsAMI(secret=SECRET, accounts_file=tmp_path / "pjsip_hotdesk.conf")
    with ThreadedAMI(fake) as running:
        yield running


@pytest.fixture
def app(web_runtime, ami, tmp_path):
    cfg = web_runtime.config
    cfg = dataclasses.replace(
        cfg, ami=AmiConfig(port=ami.port, secret=SECRET),
        switch=dataclasses.replace(cfg.switch, accounts_file=str(ami.accounts_file)))
    app = create_app(dataclasses.replace(web_runtime, config=cfg))
    app.testing = True
    return app


def test_form_without_password_creates_the_idle_account(root_client, ami):
    page = root_client.get("/phones/new").get_data(as_text=True)
    assert "hotdesk creates the idle account on the switch" in page
    data = dict(PHONE, csrf_token=csrf_token(root_client, "/phones/new"))
    text = root_client.post("/phones/new", data=data, follow_redirects=True).get_data(
        as_text=True)
    assert "res_pjsip reloaded" in text, text
    device = Device.get(Device.idle_extension == "8021")
    assert device.idle_managed and device.idle_sip_password not in text
    assert ami.sorcery[("endpoint", "8021", "context")] == "hotdesk-idle"
    token = csrf_token(root_client, f"/phones/{device.id}")
    text = root_client.post(f"/phones/{device.id}/delete", data={"csrf_token": token},
                            follow_redirects=True).get_data(as_text=True)
    assert "res_pjsip reloaded" in text and ami.reloads == 2
    assert ("endpoint", "8021", "context") not in ami.sorcery


def test_refused_reload_is_shown_and_kept(root_client, ami):
    ami.write = {"call"}
    data = dict(PHONE, csrf_token=csrf_token(root_client, "/phones/new"))
    text = root_client.post("/phones/new", data=data, follow_redirects=True).get_data(
        as_text=True)
    assert "the switch is not updated yet" in text and "Permission denied" in text
    listing = root_client.get("/phones").get_data(as_text=True)
    assert 'id="switch-sync"' in listing and "not applied yet" in listing


def test_api_creates_the_idle_account(app, runtime, sysadmin, ami):
    client = app.test_client()
    body = {"mac": "00:15:65:aa:bb:02", "extension": "8022", "name": "Desk 22"}
    reply = client.post("/api/v1/phones", json=body, headers=bearer(runtime, sysadmin))
    assert reply.status_code == 201, reply.get_json()
    steps = {s["step"]: s for s in reply.get_json()["steps"]}
    assert steps["switch"]["ok"] is True
    assert ami.sorcery[("endpoint", "8022", "auth")] == "8022"
    generated = Device.get(Device.idle_extension == "8022").idle_sip_password
    assert generated not in reply.get_data(as_text=True)
