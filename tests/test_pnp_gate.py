"""Who PnP gives a provisioning URL to, with SIPp as the phone over real UDP: only a
registered PnP phone that never fetched a config (or that an admin armed), from an
allowed network. Every other request is recorded and answered without a URL."""

from __future__ import annotations

import json
import socket

import pytest

from hotdesk.provisioning import discovery
from hotdesk.provisioning.render import device_url
from hotdesk.store.models import AuditEvent, Device, DiscoveredPhone, utcnow
from hotdesk_cli.main import main
from tests.conftest import make_device
from tests.pnp_helpers import run_sipp, running_listener, sipp_messages, unicast_config
from tests.test_pnp_listener import PHONE, wait_until


def withheld_reasons() -> list[str]:
    rows = AuditEvent.select().where(AuditEvent.action == "pnp_url_withheld")
    return [json.loads(r.detail)["reason"] for r in rows]


def ask_without_url(config, db, tmp_path, mac: str) -> None:  # type: ignore[no-untyped-def]
    """SIPp sends the SUBSCRIBE; its scenario fails if any NOTIFY arrives."""
    with running_listener(config, db) as listener:
        port = listener.unicast.local()[1]
        result = run_sipp("pnp_unknown_phone.xml", f"127.0.0.1:{port}", tmp_path,
                          dict(PHONE, mac=mac))
        assert result.returncode == 0, result.stdout[-2000:] + sipp_messages(tmp_path)
        assert listener.stats.notifies_sent == 0 and listener.stats.withheld == 1
    assert "NOTIFY" not in sipp_messages(tmp_path)
    assert DiscoveredPhone.get(DiscoveredPhone.mac == mac).last_seen is not None


def test_an_rps_phone_never_gets_its_url_by_pnp(runtime, tmp_path):
    device = make_device(runtime, mac="00:15:65:12:34:ab", method="rps", rps=True)
    ask_without_url(unicast_config(runtime.config), runtime.db, tmp_path, "0015651234ab")
    assert withheld_reasons() == ["provisioned by RPS, not PnP"]
    assert device.prov_token not in sipp_messages(tmp_path)


def test_a_provisioned_phone_gets_its_url_only_within_an_armed_window(runtime, tmp_path):
    device = make_device(runtime, mac="00:15:65:12:34:ab")
    Device.update(fetched_version=1, last_fetch_at=utcnow()).where(
        Device.id == device.id).execute()
    config = unicast_config(runtime.config)
    (tmp_path / "before").mkdir()
    ask_without_url(config, runtime.db, tmp_path / "before", "0015651234ab")
    assert withheld_reasons()[0].startswith("already provisioned")

    discovery.arm(runtime.db, device, 5, actor="admin:root")
    with running_listener(config, runtime.db) as listener:
        port = listener.unicast.local()[1]
        result = run_sipp("pnp_phone.xml", f"127.0.0.1:{port}", tmp_path, PHONE)
        assert result.returncode == 0, result.stdout[-2000:] + sipp_messages(tmp_path)
        assert wait_until(lambda: listener.stats.notifies_answered == 1)
    assert f"PROVISIONING-URL {device_url(config, device)}" in (
        tmp_path / "actions.log").read_text()

    # Once the window has passed, the URL is withheld again.
    Device.update(pnp_armed_until=utcnow()).where(Device.id == device.id).execute()
    (tmp_path / "after").mkdir()
    ask_without_url(config, runtime.db, tmp_path / "after", "0015651234ab")


def test_a_source_outside_the_allowed_networks_gets_no_url(runtime, tmp_path):
    make_device(runtime, mac="00:15:65:12:34:ab")  # never fetched: would get it from the LAN
    config = unicast_config(runtime.config, allow_networks="192.0.2.0/24")
    ask_without_url(config, runtime.db, tmp_path, "0015651234ab")
    assert withheld_reasons() == ["source 127.0.0.1 outside [pnp] allow_networks"]


def test_pnp_arm_command_opens_the_window(runtime, monkeypatch, capsys):
    device = make_device(runtime, mac="00:15:65:12:34:ab")
    monkeypatch.setenv("HOTDESK_DATABASE_URL", runtime.config.database.url)
    assert main(["pnp", "arm", "00-15-65-12-34-AB", "--minutes", "5"]) == 0
    assert "00:15:65:12:34:AB: PnP answers" in capsys.readouterr().out
    armed = Device.get_by_id(device.id).pnp_armed_until
    assert armed is not None and 4 * 60 < (armed - utcnow()).total_seconds() <= 5 * 60
    assert AuditEvent.get(AuditEvent.action == "pnp_armed").actor == "cli"


def test_arming_an_rps_phone_is_refused(runtime, monkeypatch, capsys):
    make_device(runtime, mac="00:15:65:12:34:ab", method="rps", rps=True)
    monkeypatch.setenv("HOTDESK_DATABASE_URL", runtime.config.database.url)
    assert main(["pnp", "arm", "00:15:65:12:34:ab"]) == 1
    assert "provisioned by RPS" in capsys.readouterr().err
    assert Device.get(Device.mac == "0015651234ab").pnp_armed_until is None


def test_push_to_a_provisioned_phone_sends_nothing_until_armed(runtime):
    """Anyone can make hotdesk record "their" address for a MAC with one SUBSCRIBE; an
    admin saving the phone later must not push the URL there."""
    from hotdesk_pnp.push import push_provisioning_url, push_succeeded

    device = make_device(runtime, mac="00:15:65:12:34:ab")
    Device.update(fetched_version=1, last_fetch_at=utcnow()).where(
        Device.id == device.id).execute()
    config = unicast_config(runtime.config, t1_ms=50, notify_timeout_seconds=0.5)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as spoofer:
        spoofer.bind(("127.0.0.1", 0))
        spoofer.settimeout(1.0)
        address = f"127.0.0.1:{spoofer.getsockname()[1]}"
        discovery.record_sighting(runtime.db, discovery.Sighting("0015651234ab",
                                                                 address=address))
        result = push_provisioning_url(config, Device.get_by_id(device.id))
        assert result.startswith("not sent: already provisioned") and not push_succeeded(result)
        with pytest.raises(TimeoutError):
            spoofer.recvfrom(4096)
        discovery.arm(runtime.db, device, 5)
        result = push_provisioning_url(config, Device.get_by_id(device.id))
        assert result.startswith(f"sent to {address}, no answer")
        assert device.prov_token.encode() in spoofer.recvfrom(4096)[0]
