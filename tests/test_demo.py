"""``hotdesk demo --write-config`` (what scripts/demo runs): the hotdesk command then finds
the demo's database, a second run prints the credentials again, and the demo talks to no
switch unless asked."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest


def hotdesk(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HOTDESK_")}
    script = Path(sys.executable).parent / "hotdesk"
    proc = subprocess.run([str(script), *args], cwd=cwd, env={**clean, **env},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def demo_dir(tmp_path: Path) -> Path:
    hotdesk(tmp_path, "demo", "--write-config", "hotdesk.ini")
    return tmp_path


def test_cli_finds_the_demo_database_and_a_second_run_prints_credentials(demo_dir):
    first = hotdesk(demo_dir, "demo", "--write-config", "hotdesk.ini").stdout
    second = hotdesk(demo_dir, "demo", "--write-config", "hotdesk.ini").stdout
    for out in (first, second):
        assert "user 101 Alice Martin: PIN 1234" in out
        assert "phone Desk 1 (00:15:65:12:34:01, idle extension 8001): http://" in out
    password = [line for line in first.splitlines() if line.startswith("web admin")]
    again = [line for line in second.splitlines() if line.startswith("web admin")]
    assert password[0].split("password")[1] == again[0].split("password")[1]
    assert (demo_dir / "var" / "demo-admin-password").stat().st_mode & 0o077 == 0
    # The README's commands, run from the same directory, see the demo's data ...
    assert "Alice Martin" in hotdesk(demo_dir, "user", "list").stdout
    assert "Desk 1" in hotdesk(demo_dir, "device", "list").stdout
    upgraded = hotdesk(demo_dir, "db", "upgrade").stdout
    assert str(demo_dir / "var" / "hotdesk.db") in upgraded
    # ... and never create a second, empty database next to it.
    assert not (demo_dir / "hotdesk.db").exists()


def test_a_config_file_the_demo_did_not_write_is_left_alone(tmp_path):
    mine = "[database]\nurl = sqlite:///mine.db\n"
    (tmp_path / "hotdesk.ini").write_text(mine)
    out = hotdesk(tmp_path, "demo", "--write-config", "hotdesk.ini").stdout
    assert "was not written by the demo; using it as it is" in out
    assert (tmp_path / "hotdesk.ini").read_text() == mine and (tmp_path / "mine.db").exists()


def ami_connections_during_agi(cwd: Path, seconds: float, **env: str) -> tuple[int, str]:
    """Run ``hotdesk agi`` for a while with AMI pointed at a listener we own; count the
    connections it made to it."""
    with socket.socket() as ami:
        ami.bind(("127.0.0.1", 0))
        ami.listen(5)
        ami.settimeout(0.2)
        clean = {k: v for k, v in os.environ.items() if not k.startswith("HOTDESK_")}
        env = {**clean, "HOTDESK_AMI_PORT": str(ami.getsockname()[1]), **env}
        script = Path(sys.executable).parent / "hotdesk"
        proc = subprocess.Popen([str(script), "agi"], cwd=cwd, env=env,
                                stderr=subprocess.PIPE, text=True)
        connections = 0
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                try:
                    conn, _ = ami.accept()
                    conn.close()
                    connections += 1
                except TimeoutError:
                    pass
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=10)
    return connections, err


def test_the_demo_talks_to_no_switch_unless_asked(demo_dir):
    config = (demo_dir / "hotdesk.ini").read_text()
    # Not the standard FastAGI / Event Socket ports a lab PBX's dialplan points at.
    assert "[agi]" in config and "listen = 127.0.0.1:14573" in config
    assert "listen = 127.0.0.1:18084" in config and "type = none" in config
    from tests.web.browser import free_port

    listen = f"127.0.0.1:{free_port()}"  # the real 14573 may be taken on a shared machine
    connections, log = ami_connections_during_agi(demo_dir, 3.0, HOTDESK_AGI_LISTEN=listen)
    assert connections == 0, log
    assert f"FastAGI listening on {listen}" in log and "sends no NOTIFYs" in log
    # Asked for (scripts/demo --switch asterisk writes type = asterisk): it connects.
    connections, log = ami_connections_during_agi(demo_dir, 3.0, HOTDESK_AGI_LISTEN=listen,
                                                  HOTDESK_SWITCH_TYPE="asterisk")
    assert connections >= 1, log


def test_switch_asterisk_uses_the_standard_fastagi_port(tmp_path):
    hotdesk(tmp_path, "demo", "--write-config", "hotdesk.ini", "--switch", "asterisk")
    text = (tmp_path / "hotdesk.ini").read_text()
    assert "type = asterisk" in text and "listen = 127.0.0.1:4573" in text


def test_a_demo_login_works_without_any_switch(demo_dir):
    from tests.web.browser import free_port

    listen = f"127.0.0.1:{free_port()}"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HOTDESK_")}
    script = Path(sys.executable).parent / "hotdesk"
    agi = subprocess.Popen([str(script), "agi"], cwd=demo_dir, stderr=subprocess.PIPE,
                           env={**clean, "HOTDESK_AGI_LISTEN": listen}, text=True)
    try:
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", int(listen.rsplit(":", 1)[1]))) == 0:
                    break
            time.sleep(0.1)
        out = hotdesk(demo_dir, "simulate", "login", "--device", "00:15:65:12:34:01",
                      "--extension", "101", "--pin", "1234", HOTDESK_AGI_LISTEN=listen).stdout
        assert "HOTDESK_RESULT" in out and "ok" in out
        assert "Desk 1" in hotdesk(demo_dir, "session", "list").stdout
        config = hotdesk(demo_dir, "provision", "render", "00:15:65:12:34:01").stdout
        assert "account.1.user_name = 101" in config  # the logged-in user's account
    finally:
        agi.terminate()
        agi.communicate(timeout=10)
