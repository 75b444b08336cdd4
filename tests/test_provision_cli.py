"""``hotdesk provision render|render-all|url`` as a subprocess, and render_dir files."""

from __future__ import annotations

import os
import stat

from tests.test_cli import db_url, hotdesk  # noqa: F401 - db_url is a fixture


def test_render_multi_file_render_all_and_url(db_url, tmp_path):  # noqa: F811
    hotdesk(db_url, "device", "add", "--mac", "00:04:f2:00:00:01", "--vendor", "polycom",
            "--extension", "8001", "--sip-password", "PolyIdle1")
    hotdesk(db_url, "device", "add", "--mac", "00:15:65:00:00:02", "--vendor", "yealink",
            "--extension", "8002", "--sip-password", "YlIdle2")
    out = hotdesk(db_url, "provision", "render", "0004f2000001").stdout
    assert "==> 0004f2000001.cfg <==" in out and "==> 0004f2000001-hotdesk.cfg <==" in out
    one = hotdesk(db_url, "provision", "render", "0004f2000001", "--file",
                  "0004f2000001-hotdesk.cfg").stdout
    assert one.startswith("<?xml") and 'reg.1.auth.password="PolyIdle1"' in one
    bad = hotdesk(db_url, "provision", "render", "0004f2000001", "--file", "x.cfg", check=False)
    assert bad.returncode == 1 and "do not request x.cfg" in bad.stderr

    render_dir = tmp_path / "tftp"
    env_dir = {"HOTDESK_PROVISIONING_RENDER_DIR": str(render_dir)}
    os.environ.update(env_dir)
    try:
        stale = render_dir / "deleted-device-token"
        stale.mkdir(parents=True)
        (stale / "001565000009.cfg").write_text("old secret")
        out = hotdesk(db_url, "provision", "render-all").stdout
        assert "3 files for 2 phones" in out and "1 stale" in out
        assert not stale.exists()
        files = sorted(p.relative_to(render_dir).parts[1] for p in render_dir.rglob("*.cfg"))
        assert files == ["0004f2000001-hotdesk.cfg", "0004f2000001.cfg", "001565000002.cfg"]
        for path in render_dir.rglob("*.cfg"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o640
        assert not list(render_dir.rglob(".tmp-*"))
        url = hotdesk(db_url, "provision", "url", "00:15:65:00:00:02").stdout
        token = next(p.parent.name for p in render_dir.rglob("001565000002.cfg"))
        assert f"/prov/{token}/" in url and "check-sync;reboot=false" in url
        assert "HTTP auth" not in url
        os.environ["HOTDESK_PROVISIONING_AUTH"] = "basic"
        url = hotdesk(db_url, "provision", "url", "00:15:65:00:00:02").stdout
        assert f"HTTP auth: basic, user 001565000002, password {token}" in url
    finally:
        for key in (*env_dir, "HOTDESK_PROVISIONING_AUTH"):
            os.environ.pop(key, None)


def test_check_says_what_the_phone_will_do(db_url):  # noqa: F811
    hotdesk(db_url, "device", "add", "--mac", "00:0b:82:00:00:07", "--vendor", "grandstream",
            "--model", "GXP2140", "--extension", "8007", "--sip-password", "GsIdle7")
    hotdesk(db_url, "device", "add", "--mac", "00:15:65:00:00:08", "--vendor", "yealink",
            "--model", "T99Z", "--extension", "8008", "--sip-password", "YlIdle8")
    gs = hotdesk(db_url, "provision", "check", "000b82000007").stdout
    assert "virtual multi-purpose keys" in gs
    assert "Registers its idle account: user 8007" in gs
    assert "Transport UDP; SRTP off." in gs and "Hot desk log in -> *70" in gs
    assert "the phone follows DST" in gs and "Warning" not in gs
    yl = hotdesk(db_url, "provision", "check", "00:15:65:00:00:08").stdout
    assert "the zone has no DST and the phone's own DST is off" in yl  # UTC by default
    assert "on its own" in yl
    assert "Warning: model 'T99Z' is not in a model list" in yl
    hotdesk(db_url, "device", "add", "--mac", "00:04:13:00:00:09", "--vendor", "snom",
            "--model", "D785", "--extension", "8009", "--sip-password", "SnIdle9")
    sn = hotdesk(db_url, "provision", "check", "000413000009").stdout
    assert "re-provisions it at each DST change" in sn
    assert "Transport UDP; SRTP off." in sn
    assert "its own DST rule may still apply" in sn
    hotdesk(db_url, "device", "add", "--mac", "00:a8:59:00:00:0c", "--vendor", "fanvil",
            "--model", "X3S", "--extension", "8012", "--sip-password", "FvIdle12")
    fv = hotdesk(db_url, "provision", "check", "00a85900000c").stdout
    assert "<VOIP_CONFIG_FILE>" in fv and "at boot only" in fv


def test_timezone_command(db_url):  # noqa: F811
    hotdesk(db_url, "device", "add", "--mac", "00:15:65:00:00:0a", "--vendor", "cisco",
            "--extension", "8010", "--sip-password", "CiIdle10", "--transport", "tls")
    out = hotdesk(db_url, "provision", "timezone", "America/New_York").stdout
    assert "time zone America/New_York; 1 phone(s) re-provisioned" in out
    check = hotdesk(db_url, "provision", "check", "00:15:65:00:00:0a").stdout
    assert "Clock: America/New_York" in check and "Transport TLS" in check
    assert ":5061" in check
    bad = hotdesk(db_url, "provision", "timezone", "Mars/Base", check=False)
    assert bad.returncode == 1 and "not an IANA name" in bad.stderr
