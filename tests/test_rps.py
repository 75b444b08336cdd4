"""RPS clients and save/remove against local fake redirect services over HTTP."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from hotdesk.admin.inventory import default_tenant
from hotdesk.provisioning.render import device_url
from hotdesk.provisioning.rps import (
    RpsError,
    check_rps,
    client_for,
    has_service,
    remove_from_rps,
    save_to_rps,
)
from hotdesk.provisioning.rps_clients.sraps import SrapsClient
from hotdesk.provisioning.rps_clients.xmlrpc_redirect import XmlRpcRedirectClient
from hotdesk.settings import Config
from hotdesk.store.models import AuditEvent, Device
from tests.conftest import make_device
from tests.fakes.rps import RedirectAccount, SrapsAccount, fake_redirect_service, fake_sraps


def with_rps(config: Config, **values: object) -> Config:
    return dataclasses.replace(config, rps=dataclasses.replace(config.rps, **values))


@pytest.fixture
def yealink_rps():
    acct = RedirectAccount()
    with fake_redirect_service(acct) as url:
        yield acct, url


@pytest.fixture
def sraps():
    acct = SrapsAccount()
    with fake_sraps(acct) as url:
        yield acct, url


def yealink_config(config: Config, url: str, acct: RedirectAccount) -> Config:
    return with_rps(config, yealink_url=url, yealink_username=acct.username,
                    yealink_password=acct.password)


def test_save_registers_mac_with_device_url_creating_the_server(runtime, yealink_rps, caplog):
    acct, url = yealink_rps
    config = yealink_config(runtime.config, url, acct)
    device = make_device(runtime, method="rps", rps=True)
    caplog.set_level(logging.DEBUG)
    result = save_to_rps(config, device)
    assert result == "00:15:65:12:34:AB registered with Yealink RPS (OK)"
    assert acct.devices["0015651234AB"] == ("hotdesk", device_url(config, device))
    # First attempt: the account had no "hotdesk" server, so it was added, then retried.
    assert [c[0] for c in acct.calls] == ["redirect.registerDeviceWithUniqueUrl",
                                           "redirect.addServer",
                                           "redirect.registerDeviceWithUniqueUrl"]
    assert acct.calls[1][1] == ("hotdesk", "http://127.0.0.1:8080/")
    assert acct.calls[2][1][3] == "1"  # isOverride
    assert AuditEvent.select().where(AuditEvent.action == "rps_registered").count() == 1
    assert acct.password not in caplog.text
    assert check_rps(config, device.mac, "yealink").startswith("00:15:65:12:34:AB: registered")


def test_remove_deregisters(runtime, yealink_rps):
    acct, url = yealink_rps
    config = yealink_config(runtime.config, url, acct)
    device = make_device(runtime, method="rps", rps=True)
    save_to_rps(config, device)
    assert remove_from_rps(config, device) == "00:15:65:12:34:AB removed from Yealink RPS (OK)"
    assert acct.devices == {}
    with pytest.raises(RpsError) as err:
        remove_from_rps(config, device)
    assert str(err.value) == "error:the mac(s) 0015651234AB is not registered"


def test_service_errors_reach_the_admin_verbatim(runtime, yealink_rps):
    acct, url = yealink_rps
    acct.elsewhere.add("0015651234AB")
    config = yealink_config(runtime.config, url, acct)
    device = make_device(runtime, method="rps", rps=True)
    with pytest.raises(RpsError) as err:
        save_to_rps(config, device)
    assert str(err.value) == "error:the mac(s) 0015651234AB has been registered by another account"
    client = XmlRpcRedirectClient("Yealink", url, acct.username, acct.password)
    with pytest.raises(RpsError) as err:
        client.register("00156512zzzz", "http://example.test/x/")
    assert str(err.value) == "error:invalid mac(s):00156512ZZZZ"
    assert client.check("0015651234ab") == "registered elsewhere"


def test_wrong_credentials_and_unreachable_service_are_clear_and_leak_nothing(yealink_rps):
    acct, url = yealink_rps
    client = XmlRpcRedirectClient("Yealink", url, "acme", "wrong-password")
    with pytest.raises(RpsError) as err:
        client.check("0015651234ab")
    assert "refused the account credentials (HTTP 401" in str(err.value)
    assert "wrong-password" not in str(err.value)
    assert acct.auth_failures == 1
    dead = XmlRpcRedirectClient("Yealink", "http://acme:pw@127.0.0.1:9/xmlrpc", "acme",
                                "wrong-password", timeout=2)
    with pytest.raises(RpsError) as err:
        dead.check("0015651234ab")
    assert str(err.value).startswith("cannot reach Yealink RPS at http://127.0.0.1:9")
    assert "pw" not in str(err.value).replace("http", "")


def test_sraps_register_check_deregister_with_hawk(sraps):
    acct, url = sraps
    client = SrapsClient(url, acct.key_id, acct.key)
    assert client.check("000413aabbcc") == "unregistered"
    assert client.register("000413aabbcc", "https://pbx.example.test/prov/tok/") == "OK"
    assert acct.endpoints["000413aabbcc"] == {
        "mac": "000413aabbcc", "autoprovisioning_enabled": True,
        "provisioning_url": "https://pbx.example.test/prov/tok/"}
    assert client.check("000413aabbcc") == "registered (autoprovisioning on)"
    assert client.deregister("000413aabbcc") == "OK"
    assert acct.endpoints == {}
    assert acct.bad_signatures == 0
    # Links were followed once and cached.
    assert [p for _, p in acct.requests].count(f"/api/v1/tokens/{acct.key_id}") == 1


def test_sraps_errors_verbatim_and_bad_key_refused(sraps):
    acct, url = sraps
    acct.elsewhere.add("000413aabbcc")
    client = SrapsClient(url, acct.key_id, acct.key)
    with pytest.raises(RpsError) as err:
        client.register("000413aabbcc", "https://pbx.example.test/prov/tok/")
    assert str(err.value) == "This MAC address is already claimed by another company"
    forged = SrapsClient(url, acct.key_id, "not-the-key")
    with pytest.raises(RpsError) as err:
        forged.register("000413aabbc1", "https://pbx.example.test/prov/tok/")
    assert str(err.value) == "Unauthorized: bad Hawk signature"
    assert "not-the-key" not in str(err.value)
    assert acct.bad_signatures == 1


def test_snom_device_goes_to_sraps(runtime, sraps):
    acct, url = sraps
    config = with_rps(runtime.config, snom_url=url, snom_username=acct.key_id,
                      snom_password=acct.key)
    # Created directly: the snom vendor profile is not part of this branch's vendors.
    device = Device.create(tenant=default_tenant(), mac="000413aabbcc", vendor="snom",
                           idle_extension="8009", idle_sip_username="8009",
                           idle_sip_password="x", method="rps", rps_enabled=True)
    assert save_to_rps(config, device) == "00:04:13:AA:BB:CC registered with snom RPS (OK)"
    assert acct.endpoints["000413aabbcc"]["provisioning_url"] == device_url(config, device)


def test_unconfigured_vendor_says_what_to_set(config):
    assert not has_service(config, "yealink")
    with pytest.raises(RpsError) as err:
        client_for(config, "yealink")
    assert "set [rps] yealink_url, yealink_username and yealink_password" in str(err.value)
    with pytest.raises(RpsError):
        client_for(config, "grandstream")
    assert has_service(with_rps(config, yealink_username="u"), "yealink")
    mapped = with_rps(config, vendors="fanvil=yealink", yealink_username="u")
    assert has_service(mapped, "fanvil") and not has_service(mapped, "snom")
