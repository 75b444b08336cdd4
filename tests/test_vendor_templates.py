"""Every vendor's rendered files parse in their format, hold only their own user's
values, survive hostile display names, and template overrides/errors behave."""

from __future__ import annotations

import dataclasses
import logging
import re
import xml.etree.ElementTree as ET

import pytest

from hotdesk.admin.inventory import add_user, default_tenant
from hotdesk.calls.service import CallContext
from hotdesk.provisioning.render import (
    ConfigCache,
    TemplateError,
    make_environment,
    render_device,
    render_file,
    write_device_files,
)
from hotdesk.provisioning.vendors import VENDORS, get_vendor
from hotdesk.settings import ProvisioningConfig
from hotdesk.store.models import Device, User
from tests.conftest import make_device

HOSTILE = 'Zq9 <b>&amp; "Q" \'s\r\naccount.1.password = pwned\n<P34>x</P34>'


def ctx() -> CallContext:
    return CallContext(switch="asterisk", call_id="t", endpoint="x")


def parse(vendor: str, name: str, content: str) -> dict[str, str] | ET.Element:
    """Parse ``content`` in the vendor's format; fail the test if it does not parse."""
    if vendor == "yealink":
        lines = content.splitlines()
        assert lines[0] == "#!version:1.0.0.1"
        values: dict[str, str] = {}
        for line in lines[1:]:
            if not line or line.startswith("#"):
                continue
            m = re.fullmatch(r"([A-Za-z0-9_.]+) = ?(.*)", line)
            assert m, f"{name}: not a key = value line: {line!r}"
            assert m.group(1) not in values, f"{name}: {m.group(1)} set twice"
            values[m.group(1)] = m.group(2)
        return values
    return ET.fromstring(content.encode("utf-8"))


def texts(tree: dict[str, str] | ET.Element) -> list[str]:
    if isinstance(tree, dict):
        return list(tree.values())
    out = []
    for el in tree.iter():
        out += [el.text or "", *el.attrib.values()]
    return out


@pytest.fixture
def users(runtime):
    tenant = default_tenant()
    a = add_user(runtime.db, tenant, "101", name="Alice", pin="1234",
                 sip_password="alice-pw<&>", hotdesk=True,
                 keys=[{"type": "blf", "value": "102", "label": "Bob;nme=x"},
                       {"type": "speeddial", "value": "5551234$Tx", "label": "Pizza"}])
    # The front ends refuse control characters in a name now; a row written by an older
    # version may still hold them, and the templates must not break on it.
    User.update(display_name=HOSTILE).where(User.id == a.id).execute()
    a = User.get_by_id(a.id)
    b = add_user(runtime.db, tenant, "102", name="Bob Secretname", pin="4321",
                 sip_password="bob-only-secret", hotdesk=True,
                 keys=[{"type": "speeddial", "value": "7777", "label": "BobKey"}])
    return a, b


@pytest.mark.parametrize("vendor", sorted(VENDORS))
def test_rendered_files_parse_and_carry_only_own_secrets(runtime, users, vendor):
    desk_a = make_device(runtime, mac="00:15:65:00:01:01", extension="8101", vendor=vendor,
                         model="M1")
    desk_b = make_device(runtime, mac="00:15:65:00:01:02", extension="8102", vendor=vendor)
    env = make_environment(runtime.config)
    idle = render_device(env, Device.get_by_id(desk_a.id), runtime.config)
    assert runtime.service.login(desk_a.id, "101", "1234", ctx()).outcome.value == "ok"
    assert runtime.service.login(desk_b.id, "102", "4321", ctx()).outcome.value == "ok"
    user = render_device(env, Device.get_by_id(desk_a.id), runtime.config)
    assert set(idle) == set(user) == set(get_vendor(vendor).filenames(desk_a.mac, "M1"))
    for label, files in (("idle", idle), ("user", user)):
        for name, content in files.items():
            tree = parse(vendor, name, content)
            values = texts(tree)
            joined = "\n".join(values) + content
            for secret in ("bob-only-secret", "Secretname", "BobKey", "idle-8102"):
                assert secret not in joined, f"{vendor} {label} {name} leaks {secret}"
            if label == "idle":
                assert "alice-pw" not in content and "Zq9" not in content
            if vendor == "yealink":
                assert tree.get("account.1.password", "") != "pwned"
                assert all("\n" not in v and "\r" not in v for v in values)
    # the user's own secret and keys are there, the hostile name survives intact
    per_phone = [c for n, c in user.items() if "hotdesk" in n or vendor != "polycom"][0]
    values = texts(parse(vendor, "user", per_phone))
    assert any("alice-pw<&>" == v for v in values), f"{vendor}: password not carried exactly"
    assert any(v.startswith("Zq9 <b>&amp; \"Q\" 's") for v in values), f"{vendor}: name mangled"
    assert "5551234" in per_phone and "5551234$" not in per_phone, "key value smuggled a macro"
    assert "*71" in per_phone, f"{vendor}: user profile lacks the log out key"
    idle_phone = [c for n, c in idle.items() if "hotdesk" in n or vendor != "polycom"][0]
    assert "*70" in idle_phone, f"{vendor}: idle profile lacks the log in key"
    assert "free" in idle_phone


@pytest.mark.parametrize("vendor", sorted(VENDORS))
def test_idle_profile_clears_previous_users_keys(runtime, users, vendor):
    desk = make_device(runtime, mac="00:15:65:00:01:03", extension="8103", vendor=vendor)
    env = make_environment(runtime.config)
    assert runtime.service.login(desk.id, "101", "1234", ctx()).outcome.value == "ok"
    assert runtime.service.logout(desk.id).value == "logged_out"
    files = render_device(env, Device.get_by_id(desk.id), runtime.config)
    joined = "".join(files.values())
    assert "102" not in joined.replace("001565", "") and "Pizza" not in joined


def test_common_files_are_served_harmless(runtime):
    yl = make_device(runtime, mac="00:15:65:00:01:04", extension="8104", vendor="yealink")
    poly = make_device(runtime, mac="00:15:65:00:01:05", extension="8105", vendor="polycom")
    env = make_environment(runtime.config)
    common = render_file(env, yl, "y000000000044.cfg", runtime.config)
    assert common.startswith("#!version:1.0.0.1") and "password" not in common
    master = render_file(env, poly, "000000000000.cfg", runtime.config)
    assert ET.fromstring(master).get("CONFIG_FILES") == ""
    assert render_file(env, yl, "001565000199.cfg", runtime.config) is None
    assert render_file(env, poly, f"{poly.mac}-phone.cfg", runtime.config) is None


def test_template_override_is_used(runtime, tmp_path):
    (tmp_path / "yealink").mkdir()
    (tmp_path / "yealink" / "mac.cfg.j2").write_text(
        "#!version:1.0.0.1\nhotdesk.custom = {{ profile.extension }}\n")
    cfg = dataclasses.replace(runtime.config, provisioning=ProvisioningConfig(
        templates_dir=str(tmp_path)))
    desk = make_device(runtime)
    out = render_device(make_environment(cfg), desk, cfg)
    assert out == {f"{desk.mac}.cfg": "#!version:1.0.0.1\nhotdesk.custom = 8001\n"}


def test_template_error_names_file_and_line_and_last_good_is_served(runtime, alice, tmp_path,
                                                                     caplog):
    override = tmp_path / "yealink" / "mac.cfg.j2"
    override.parent.mkdir()
    cfg = dataclasses.replace(runtime.config, provisioning=ProvisioningConfig(
        templates_dir=str(tmp_path)))
    desk = make_device(runtime)
    cache = ConfigCache(cfg)
    name = f"{desk.mac}.cfg"
    good = cache.get(Device.get_by_id(desk.id), name)
    assert "account.1.user_name = 8001" in good
    # a syntax error on line 3 of the override
    override.write_text("#!version:1.0.0.1\nok = 1\nbroken = {{ profile.extension \n")
    cache._stamp_checked = -10.0  # the directory changed: look again now
    with pytest.raises(TemplateError) as err:
        render_device(make_environment(cfg), desk, cfg)
    assert err.value.template == "yealink/mac.cfg.j2" and err.value.line == 3
    assert "line 3" in str(err.value)
    runtime.service.login(desk.id, "101", "1234", ctx())
    with caplog.at_level(logging.ERROR):
        served = cache.get(Device.get_by_id(desk.id), name)
    assert served == good  # the previous good (idle) config, not a broken one
    assert "yealink/mac.cfg.j2 line 3" in caplog.text
    assert cache.last_error is not None and cache.last_error.line == 3
    # a render-time error (unknown attribute) on line 2 is located too
    override.write_text("#!version:1.0.0.1\nx = {{ profile.nope }}\n")
    with pytest.raises(TemplateError) as err:
        render_device(make_environment(cfg), desk, cfg)
    assert err.value.line == 2 and "nope" in err.value.message
    # with no good config known at all, the error reaches the caller
    with pytest.raises(TemplateError):
        ConfigCache(cfg).get(Device.get_by_id(desk.id), name)


def test_last_good_survives_restart_through_render_dir(runtime, tmp_path):
    render_dir = tmp_path / "out"
    templates = tmp_path / "tpl"
    (templates / "yealink").mkdir(parents=True)
    cfg = dataclasses.replace(runtime.config, provisioning=ProvisioningConfig(
        templates_dir=str(templates), render_dir=str(render_dir)))
    desk = make_device(runtime)
    write_device_files(make_environment(cfg), desk, cfg)
    (templates / "yealink" / "mac.cfg.j2").write_text("{% if %}\n")
    served = ConfigCache(cfg).get(desk, f"{desk.mac}.cfg")
    assert "account.1.password = idle-8001" in served
