"""Per-phone SIP transport and per-tenant / per-user time zones: validated, stored,
rendered, and the phones they affect re-provisioned at once."""

from __future__ import annotations

import pytest

from hotdesk.admin import zones
from hotdesk.admin.inventory import DeviceSpec, InventoryError, default_tenant, update_device
from hotdesk.calls.service import CallContext
from hotdesk.provisioning.render import profile_for
from hotdesk.settings import ConfigError, load_config
from hotdesk.store.models import Device, OutboxNotify, Tenant
from tests.conftest import make_device


def test_phone_transport_overrides_the_site_and_sets_the_tls_port(runtime):
    desk = make_device(runtime, mac="00:15:65:00:0d:01", extension="8501",
                       network="sbc", sbc="sbc.example.net", transport="TLS")
    assert desk.sip_transport == "tls"
    p = profile_for(Device.get_by_id(desk.id), runtime.config)
    assert (p.transport, p.registrar_port) == ("tls", 5061)
    assert (p.outbound_proxy_host, p.outbound_proxy_port) == ("sbc.example.net", 5061)
    plain = make_device(runtime, mac="00:15:65:00:0d:02", extension="8502")
    assert profile_for(Device.get_by_id(plain.id), runtime.config).transport == "udp"


def test_bad_transport_is_refused_and_nothing_is_written(runtime):
    with pytest.raises(InventoryError, match="transport must be udp, tcp or tls"):
        make_device(runtime, mac="00:15:65:00:0d:03", extension="8503", transport="sctp")
    assert not Device.select().where(Device.idle_extension == "8503").exists()
    desk = make_device(runtime, mac="00:15:65:00:0d:04", extension="8504", transport="tcp")
    spec = DeviceSpec(mac=desk.mac, extension="8504", sip_password="x", transport="")
    assert update_device(runtime.db, desk, spec).sip_transport == ""


def test_tenant_zone_reprovisions_its_phones_and_user_zone_wins(runtime, alice):
    desk = make_device(runtime, mac="00:15:65:00:0d:05", extension="8505")
    before = Device.get_by_id(desk.id).config_version
    assert zones.set_tenant_timezone(runtime.db, runtime.service, default_tenant(),
                                     "Europe/Berlin") == 1
    assert Device.get_by_id(desk.id).config_version == before + 1
    assert OutboxNotify.select().where(OutboxNotify.device == desk.id).exists()
    assert profile_for(Device.get_by_id(desk.id), runtime.config).timezone == "Europe/Berlin"
    # a user's own zone applies while they are logged in, and only then
    assert zones.set_user_timezone(runtime.db, runtime.service, alice, "Asia/Tokyo") == 0
    ctx = CallContext(switch="asterisk", call_id="t", endpoint="x")
    assert runtime.service.login(desk.id, "101", "1234", ctx).outcome.value == "ok"
    assert profile_for(Device.get_by_id(desk.id), runtime.config).timezone == "Asia/Tokyo"
    runtime.service.logout(desk.id)
    assert profile_for(Device.get_by_id(desk.id), runtime.config).timezone == "Europe/Berlin"


def test_unknown_zone_is_refused(runtime, alice):
    with pytest.raises(InventoryError, match="not an IANA name"):
        zones.set_tenant_timezone(runtime.db, runtime.service, default_tenant(), "Mars/Base")
    assert Tenant.get_by_id(default_tenant().id).timezone == ""


@pytest.mark.parametrize(("key", "value", "message"), [
    ("TRANSPORT", "sctp", "transport"),
    ("SRTP", "sometimes", "srtp"),
    ("TIMEZONE", "Mars/Base", "timezone"),
    ("RESYNC_MINUTES", "-5", "resync_minutes"),
])
def test_bad_provisioning_settings_are_refused(key, value, message):
    with pytest.raises(ConfigError, match=message):
        load_config(environ={f"HOTDESK_PROVISIONING_{key}": value})


def test_provisioning_defaults_keep_existing_behaviour():
    prov = load_config(environ={}).provisioning
    assert (prov.transport, prov.srtp, prov.timezone) == ("udp", "off", "UTC")
    assert prov.resync_minutes == 360  # new on purpose: phones poll again on their own
