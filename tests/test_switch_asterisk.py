"""Users' SIP accounts read live from Asterisk (AMI Getvar of AST_SORCERY), idle accounts
written to the generated pjsip include and reloaded, drift healing, hotdesk doctor;
all against the AMI fake."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hotdesk.admin.inventory import (
    DeviceSpec,
    InventoryError,
    add_device,
    add_user,
    default_tenant,
    delete_device,
)
from hotdesk.provisioning.render import ConfigCache
from hotdesk.settings import AmiConfig, Config, SwitchConfig
from hotdesk.store.models import Device, OutboxNotify, SwitchSync
from hotdesk.switch import doctor, drift, idle_accounts
from hotdesk.switch.accounts import AccountError, AccountMissing, CachedReader
from hotdesk_agi.ami_sync import BlockingAmi
from hotdesk_agi.switch_view import AsteriskView
from tests.fakes.asterisk_accounts import AccountsAMI, ThreadedAMI

SECRET = "hotdesk-secret"


@pytest.fixture
def ami(tmp_path):
    fake = AccountsAMI(secret=SECRET, accounts_file=tmp_path / "pjsip_hotdesk.conf")
    fake.add_account("101", "secret101", max_contacts=2)
    fake.add_account("102", "secret102")
    fake.sorcery[("global", "global", "default_outbound_endpoint")] = "hotdesk-outbound"
    fake.voicemail.update({"101@default": "1234", "102@default": "4321"})
    fake.hotdesk_dialplan(["phones", "hotdesk-idle"])
    fake.sounds.update(Config().prompts("asterisk").values())
    with ThreadedAMI(fake) as running:
        yield running


def switch_config(config: Config, ami: AccountsAMI, **switch: str) -> Config:
    return dataclasses.replace(
        config, ami=AmiConfig(port=ami.port, secret=SECRET),
        switch=dataclasses.replace(SwitchConfig(), **switch))


@pytest.fixture
def cfg(config, ami, tmp_path):
    return switch_config(config, ami, accounts_file=str(tmp_path / "pjsip_hotdesk.conf"))


def view_of(cfg: Config) -> AsteriskView:
    return AsteriskView(BlockingAmi(cfg.ami, timeout=3.0))


def login(runtime, device, user) -> None:
    from hotdesk.calls.service import CallContext

    ctx = CallContext(switch="asterisk", call_id="t", endpoint=device.idle_extension,
                      source="127.0.0.1:5071")
    outcome = runtime.service.login(device.id, user.extension, "1234", ctx).outcome
    assert outcome.name == "LOGGED_IN", outcome


def test_live_account_read_over_getvar(cfg, ami):
    view = view_of(cfg)
    creds = view.read("101", "default")
    assert (creds.auth_username, creds.password) == ("101", "secret101")
    assert "secret101" not in repr(creds)
    sent = [dict(a)["Variable"] for a in ami.actions if dict(a).get("Action") == "Getvar"]
    assert sent == ["AST_SORCERY(res_pjsip,endpoint,101,auth)",
                    "AST_SORCERY(res_pjsip,auth,101,username)",
                    "AST_SORCERY(res_pjsip,auth,101,password)"]
    with pytest.raises(AccountMissing, match="no pjsip endpoint 999"):
        view.read("999", "default")
    del ami.sorcery[("auth", "102", "password")]  # md5_cred: no plain password
    with pytest.raises(AccountMissing, match="no plain password"):
        view.read("102", "default")


def test_getvar_refused_is_a_clear_error(config, ami):
    ami.write = {"system"}  # manager.conf write = system only
    view = view_of(switch_config(config, ami))
    with pytest.raises(AccountError, match="refused Getvar: Permission denied.*write = call"):
        view.read("101", "default")


def test_switch_down_is_a_clear_error(config):
    cfg = dataclasses.replace(config, ami=AmiConfig(port=1, secret=SECRET))
    with pytest.raises(AccountError, match="unreachable"):
        view_of(cfg).read("101", "default")


def test_cached_reader_reuses_answers_for_ttl(cfg, ami):
    now = [0.0]
    reader = CachedReader(view_of(cfg), ttl=5.0, clock=lambda: now[0])
    reader.read("101", "default")
    reader.read("101", "default")
    getvars = sum(dict(a).get("Action") == "Getvar" for a in ami.actions)
    assert getvars == 3
    now[0] = 6.0
    reader.read("101", "default")
    assert sum(dict(a).get("Action") == "Getvar" for a in ami.actions) == 6


def test_config_of_a_user_without_stored_password_carries_the_switch_password(
        runtime, cfg, ami, desk, caplog):
    user = add_user(runtime.db, default_tenant(), "101", name="Alice", pin="1234",
                    hotdesk=True)
    login(runtime, desk, user)
    cache = ConfigCache(cfg)
    text = cache.get(Device.get_by_id(desk.id), "0015651234ab.cfg")
    assert "account.1.password = secret101" in text
    # The switch goes away: the phone keeps getting the last good config, the log says why
    ami.write = {"system"}
    Device.update(config_version=Device.config_version + 1).where(Device.id == desk.id).execute()
    cache.accounts = CachedReader(view_of(cfg), 0.0)
    with caplog.at_level(logging.ERROR):
        again = cache.get(Device.get_by_id(desk.id), "0015651234ab.cfg")
    assert again == text
    assert "Permission denied" in caplog.text and "secret101" not in caplog.text


def test_drift_reprovisions_when_the_password_changes_on_the_switch(runtime, cfg, ami, desk):
    user = add_user(runtime.db, default_tenant(), "101", name="Alice", pin="1234",
                    hotdesk=True)
    login(runtime, desk, user)
    cache = ConfigCache(cfg)
    device = Device.get_by_id(desk.id)
    cache.get(device, "0015651234ab.cfg")
    Device.update(fetched_version=Device.config_version).where(Device.id == desk.id).execute()
    fingerprint = Device.get_by_id(desk.id).account_fingerprint
    assert fingerprint and "secret101" not in fingerprint
    reader = CachedReader(view_of(cfg), 0.0)
    assert drift.heal(runtime.db, cfg, reader).reprovisioned == 0
    version = Device.get_by_id(desk.id).config_version
    ami.sorcery[("auth", "101", "password")] = "changed-on-switch"
    result = drift.heal(runtime.db, cfg, reader)
    assert result.reprovisioned == 1
    assert Device.get_by_id(desk.id).config_version == version + 1
    row = OutboxNotify.select().order_by(OutboxNotify.id.desc()).first()
    assert row.endpoint == "101" and row.config_version == version + 1
    # Not again while the phone has not fetched the new version
    assert drift.heal(runtime.db, cfg, reader).reprovisioned == 0
    text = ConfigCache(cfg).get(Device.get_by_id(desk.id), "0015651234ab.cfg")
    assert "account.1.password = changed-on-switch" in text


def test_stored_password_of_an_upgraded_install_keeps_working(runtime, cfg, desk, alice):
    login(runtime, desk, alice)  # alice has a stored sip_password (as before the upgrade)
    text = ConfigCache(cfg).get(Device.get_by_id(desk.id), "0015651234ab.cfg")
    assert "account.1.password = alice-secret" in text


def test_phone_added_without_password_gets_an_idle_account_on_the_switch(runtime, cfg, ami):
    spec = idle_accounts.prepare(DeviceSpec(mac="00:15:65:00:00:03", extension="8003",
                                            sip_password="", name="Desk 3"), cfg)
    assert spec.idle_managed and len(spec.sip_password) >= 24
    device = add_device(runtime.db, default_tenant(), spec, config=cfg)
    text = Path(cfg.switch.accounts_file).read_text()
    assert "[8003]\ntype = endpoint\ncontext = hotdesk-idle" in text
    assert f"password = {spec.sip_password}" in text and "max_contacts = 1" in text
    assert "remove_existing = yes" in text and "dtmf_mode = rfc4733" in text
    assert idle_accounts.state().pending
    from hotdesk.switch.upkeep import apply_now

    ok, message = apply_now(runtime.db, cfg)
    assert ok, message
    assert ami.reloads == 1 and not idle_accounts.state().pending
    assert ami.sorcery[("endpoint", "8003", "context")] == "hotdesk-idle"
    assert view_of(cfg).read("8003", "default").password == spec.sip_password
    delete_device(runtime.db, runtime.service, device, config=cfg)
    assert "8003" not in Path(cfg.switch.accounts_file).read_text()
    apply_now(runtime.db, cfg)
    assert ("endpoint", "8003", "context") not in ami.sorcery


def test_unwritable_accounts_file_adds_nothing(runtime, cfg, tmp_path):
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("x")
    bad = dataclasses.replace(cfg, switch=dataclasses.replace(
        cfg.switch, accounts_file=str(blocked / "pjsip_hotdesk.conf")))
    spec = idle_accounts.prepare(DeviceSpec(mac="00:15:65:00:00:04", extension="8004",
                                            sip_password=""), bad)
    with pytest.raises(InventoryError,
                       match="nothing changed: cannot (read|write) .*: Not a directory"):
        add_device(runtime.db, default_tenant(), spec, config=bad)
    assert Device.get_or_none(Device.idle_extension == "8004") is None
    assert SwitchSync.get_or_none() is None or not idle_accounts.state().pending


def test_refused_reload_is_kept_for_the_worker(runtime, cfg, ami):
    ami.write = {"call"}  # may Getvar, may not ModuleLoad
    spec = idle_accounts.prepare(DeviceSpec(mac="00:15:65:00:00:05", extension="8005",
                                            sip_password=""), cfg)
    add_device(runtime.db, default_tenant(), spec, config=cfg)
    from hotdesk.switch.upkeep import SwitchUpkeep, apply_now

    ok, message = apply_now(runtime.db, cfg)
    assert ok is False and "refused to reload res_pjsip: Permission denied" in message
    assert "Permission denied" in idle_accounts.state().describe()
    from hotdesk.ops import status

    screen = status.render(status.collect())
    assert "Idle accounts on the switch: not applied yet: Asterisk refused to reload" in screen
    ami.write = None  # the admin fixed manager.conf
    assert "idle_accounts=applied" in SwitchUpkeep(runtime.db, cfg)()
    assert not idle_accounts.state().pending and ami.reloads == 1


def hotdesk_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hotdesk_cli", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def cli_env(database_url: str, cfg: Config) -> dict[str, str]:
    env = dict(os.environ, HOTDESK_DATABASE_URL=database_url,
               HOTDESK_AMI_PORT=str(cfg.ami.port), HOTDESK_AMI_SECRET=SECRET,
               HOTDESK_SWITCH_ACCOUNTS_FILE=cfg.switch.accounts_file,
               HOTDESK_PROVISIONING_BASE_URL="http://127.0.0.1:1/prov")
    env.pop("HOTDESK_CONFIG", None)
    return env


def test_cli_device_add_and_remove_manage_the_switch(runtime, cfg, ami, database_url):
    env = cli_env(database_url, cfg)
    out = hotdesk_cli("device", "add", "--mac", "00:15:65:00:00:06", "--extension", "8006",
                      "--name", "Desk 6", env=env)
    assert out.returncode == 0, out.stderr
    assert "res_pjsip reloaded" in out.stdout and ami.reloads == 1
    assert ami.sorcery[("endpoint", "8006", "context")] == "hotdesk-idle"
    password = Device.get(Device.idle_extension == "8006").idle_sip_password
    assert password not in out.stdout + out.stderr
    out = hotdesk_cli("device", "remove", "00:15:65:00:00:06", env=env)
    assert out.returncode == 0 and ami.reloads == 2
    assert ("endpoint", "8006", "context") not in ami.sorcery


def test_doctor_passes_on_a_correct_switch_and_names_each_fault(runtime, cfg, ami,
                                                                database_url):
    add_user(runtime.db, default_tenant(), "101", name="Alice", pin="1234", hotdesk=True)
    spec = idle_accounts.prepare(DeviceSpec(mac="00:15:65:00:00:07", extension="8007",
                                            sip_password=""), cfg)
    add_device(runtime.db, default_tenant(), spec, config=cfg)
    from hotdesk.switch.upkeep import apply_now

    assert apply_now(runtime.db, cfg)[0]
    checks = doctor.run_checks(cfg, view_of(cfg), get=lambda url: 404)
    assert not doctor.failed(checks), doctor.as_text(checks)
    names = {c.name for c in checks}
    assert {"AMI reachable", "AMI privileges", "default_outbound_endpoint",
            "dialplan hotdesk-idle *70101", "dialplan phones *71", "idle account 8007",
            "user 101 account", "user 101 voicemail PIN", "user 101 max_contacts",
            "prompt files", "provisioning base_url", "emergency 911 from hotdesk-idle",
            "emergency 999 from phones"} <= names

    # break the lab, one fault per check
    del ami.sorcery[("global", "global", "default_outbound_endpoint")]
    del ami.voicemail["101@default"]
    ami.includes["phones"].clear()
    ami.sorcery[("aor", "101", "max_contacts")] = "0"
    ami.sorcery[("endpoint", "8007", "context")] = "phones"
    ami.sounds.discard("agent-pass")
    env = cli_env(database_url, cfg)
    out = hotdesk_cli("doctor", env=env)
    assert out.returncode == 1
    text = out.stdout
    for fault in ("FAIL default_outbound_endpoint", "-> pjsip.conf [global]",
                  "FAIL user 101 voicemail PIN", "voicemail.conf [default]: 101 => <PIN>",
                  "FAIL dialplan phones *70101", "include => hotdesk-features in [phones]",
                  "FAIL user 101 max_contacts", "FAIL idle account 8007: context phones",
                  "missing: agent-pass", "FAIL provisioning base_url",
                  "FAIL emergency 112 from phones: 112 in phones (user 101) matches nothing",
                  "include => hotdesk-emergency in [phones]"):
        assert fault in text, text
    report = json.loads(hotdesk_cli("doctor", "--json", env=env).stdout)
    assert report["ok"] is False
    assert {c["name"] for c in report["checks"] if c["ok"] is False} >= {
        "default_outbound_endpoint", "user 101 voicemail PIN"}


def test_doctor_names_missing_privileges_and_an_unreachable_switch(config, ami):
    ami.write = {"system"}
    checks = doctor.run_checks(switch_config(config, ami), view_of(switch_config(config, ami)),
                               get=lambda url: 200)
    bad = {c.name: c for c in checks if c.ok is False}
    assert "Getvar" in bad["AMI privileges"].detail and "ShowDialPlan" in \
        bad["AMI privileges"].detail
    down = dataclasses.replace(config, ami=AmiConfig(port=1))
    checks = doctor.run_checks(down, view_of(down), get=lambda url: 200)
    assert checks[0].ok is False and "[ami] host" in checks[0].fix


def test_preload_asks_an_unreachable_switch_once(runtime, config, desk, desk2):
    for ext, device in (("101", desk), ("102", desk2)):
        add_user(runtime.db, default_tenant(), ext, pin="1234", hotdesk=True)
        login(runtime, device, type("U", (), {"extension": ext})())

    class Down:
        calls = 0

        def read(self, account: str, domain: str):  # type: ignore[no-untyped-def]
            Down.calls += 1
            raise AccountError("AMI 127.0.0.1:5038 unreachable")

    cache = ConfigCache(config, accounts=Down())
    assert cache.preload() == 0
    assert Down.calls == 1
