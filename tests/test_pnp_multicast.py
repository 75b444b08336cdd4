"""Multicast PnP for real: ``hotdesk pnp listen`` and SIPp in a private network namespace,
the phone's SUBSCRIBE sent to 224.0.1.75:5060 (the same group and port as on a LAN)."""

from __future__ import annotations

import dataclasses
import os
import selectors
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from hotdesk.admin.inventory import DeviceSpec, add_device, default_tenant
from hotdesk.provisioning.render import device_url
from hotdesk.runtime import start
from hotdesk.settings import Config, DatabaseConfig
from tests.pnp_helpers import run_sipp, sipp_messages, sipp_path

PHONE = {"mac": "0015651234ab", "vendor": "Yealink", "model": "T54W", "version": "96.86.0.100",
         "target": "224.0.1.75"}


@pytest.fixture
def netns():
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("needs root and iproute2 to create a network namespace")
    name = f"hdpnp{uuid.uuid4().hex[:8]}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {made.stderr.strip()}")
    try:
        for cmd in (["ip", "link", "set", "lo", "up"],
                    ["ip", "link", "set", "lo", "multicast", "on"],
                    ["ip", "route", "add", "224.0.0.0/4", "dev", "lo"]):
            done = subprocess.run(["ip", "netns", "exec", name, *cmd], capture_output=True,
                                  text=True)
            if done.returncode != 0:
                pytest.skip(f"cannot set up multicast in the namespace: {done.stderr.strip()}")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def wait_for_line(proc: subprocess.Popen, needle: str, seconds: float) -> str:
    """Read the process's stderr until ``needle`` appears (bounded)."""
    seen = ""
    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    deadline = time.monotonic() + seconds
    while needle not in seen and time.monotonic() < deadline and proc.poll() is None:
        if sel.select(timeout=max(0.0, deadline - time.monotonic())):
            chunk = os.read(proc.stderr.fileno(), 4096).decode(errors="replace")
            if not chunk:
                break
            seen += chunk
    return seen


def test_multicast_subscribe_gets_url(netns, tmp_path):
    sipp_path()
    # The namespace cannot reach the test PostgreSQL server; this test always uses SQLite.
    url = f"sqlite:///{tmp_path / 'mc.db'}"
    config = dataclasses.replace(Config(), database=DatabaseConfig(url=url))
    rt = start(config, migrate=True)
    device = add_device(rt.db, default_tenant(),
                        DeviceSpec(mac=PHONE["mac"], extension="8001", sip_password="pw"))
    expected = device_url(config, device)
    rt.db.close()
    ini = tmp_path / "hotdesk.ini"
    ini.write_text(f"[database]\nurl = {url}\n[pnp]\nmulticast = true\ninterface = 127.0.0.1\n"
                   "t1_ms = 100\nnotify_timeout_seconds = 5\n")
    proc = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-m", "hotdesk_cli",
                             "-c", str(ini), "pnp", "listen"], stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL)
    try:
        startup = wait_for_line(proc, "PnP listener running", 20)
        assert "PnP listener running" in startup, startup
        result = run_sipp("pnp_phone.xml", "224.0.1.75:5060", tmp_path, PHONE,
                          prefix=["ip", "netns", "exec", netns])
        assert result.returncode == 0, result.stdout[-1500:] + sipp_messages(tmp_path)
        assert f"PROVISIONING-URL {expected}" in (tmp_path / "actions.log").read_text()
        log = wait_for_line(proc, "accepted its provisioning URL", 10)
        assert "accepted its provisioning URL" in log, log
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
