"""The admin CLI in exactly the forms the README documents, as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def hotdesk(database_url: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "hotdesk"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "hotdesk_cli"]
    env = {**os.environ, "HOTDESK_DATABASE_URL": database_url}
    env.pop("HOTDESK_CONFIG", None)
    proc = subprocess.run(cmd + list(args), env=env, capture_output=True, text=True, timeout=60)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def db_url(database_url: str) -> str:
    hotdesk(database_url, "db", "upgrade")
    return database_url


def test_documented_admin_commands(db_url):
    # [switch] credentials = switch (the default): the SIP password stays on the switch
    refused = hotdesk(db_url, "user", "add", "--extension", "101", "--sip-password", "S3cret",
                      check=False)
    assert refused.returncode == 1 and "read from the switch" in refused.stderr
    hotdesk(db_url, "user", "add", "--extension", "101", "--name", "Alice", "--pin", "1234",
            "--hotdesk")
    hotdesk(db_url, "user", "set-pin", "101", "--pin", "4321")
    users = hotdesk(db_url, "user", "list").stdout
    assert "101" in users and "Alice" in users and "S3cret" not in users
    out = hotdesk(db_url, "device", "add", "--mac", "00:15:65:12:34:AB", "--vendor", "yealink",
                  "--model", "T54W", "--extension", "8001", "--sip-password", "S3cret8001",
                  "--name", "Desk 12", "--network", "sbc", "--sbc", "sbc.example.net:5061").stdout
    assert "/prov/" in out
    devices = hotdesk(db_url, "device", "list").stdout
    assert "00:15:65:12:34:AB" in devices and "Desk 12" in devices and "sbc.example.net" in devices
    assert "USER" in hotdesk(db_url, "session", "list").stdout
    config = hotdesk(db_url, "provision", "render", "00:15:65:12:34:ab").stdout
    assert "account.1.user_name = 8001" in config
    assert "account.1.outbound_proxy.1.address = sbc.example.net" in config


def test_mistakes_give_one_clear_line_and_exit_1(db_url):
    bad = hotdesk(db_url, "device", "add", "--mac", "00:15:65:12:34", "--extension", "8001",
                  "--sip-password", "x", check=False)
    assert bad.returncode == 1
    assert "not a MAC address" in bad.stderr and "Traceback" not in bad.stderr
    hotdesk(db_url, "device", "add", "--mac", "001565000001", "--extension", "8001",
            "--sip-password", "x")
    dup = hotdesk(db_url, "device", "add", "--mac", "00-15-65-00-00-01", "--extension", "8002",
                  "--sip-password", "x", check=False)
    assert dup.returncode == 1 and "already registered" in dup.stderr
    pin = hotdesk(db_url, "user", "add", "--extension", "105", "--pin", "12", check=False)
    assert pin.returncode == 1 and "PIN must be 4 to 8 digits" in pin.stderr


def test_schema_must_be_upgraded_first(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    if os.environ.get("HOTDESK_TEST_DATABASE_URL"):
        pytest.skip("fresh-database check runs on SQLite")
    proc = hotdesk(url, "user", "list", check=False)
    assert proc.returncode == 2 and "hotdesk db upgrade" in proc.stderr
