"""``hotdesk esl`` as a real process, driven by ``simulate`` and the fake inbound switch."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from esl_handlers.simulate import simulate
from hotdesk.admin.inventory import set_pin
from hotdesk.store.models import Session
from tests.fakes.freeswitch import FakeInboundServer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_hotdesk_esl_process_with_simulate(config, runtime, alice, desk):
    set_pin(runtime.db, alice, "90817")
    fake = FakeInboundServer()
    fake.start()
    port = _free_port()
    env = dict(os.environ, HOTDESK_DATABASE_URL=config.database.url,
               HOTDESK_SWITCH_TYPE="freeswitch", HOTDESK_ESL_LISTEN=f"127.0.0.1:{port}",
               HOTDESK_ESL_HOST="127.0.0.1", HOTDESK_ESL_PORT=str(fake.address[1]),
               HOTDESK_NOTIFY_POLL_SECONDS="0.05", HOTDESK_POLICY_PIN_TIMEOUT_MS="200")
    env.pop("HOTDESK_CONFIG", None)
    proc = subprocess.Popen([sys.executable, "-m", "hotdesk_cli", "esl"], env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.05)
        lines: list[str] = []
        result = simulate(("127.0.0.1", port), "login", "8001", "101", pins=["90817"],
                          domain="default", echo=lines.append)
        assert result == "ok"
        assert any("play_and_get_digits" in ln for ln in lines)
        assert not any("1234" in ln for ln in lines)  # the PIN is never echoed
        got = fake.wait_notifies(1, timeout=10)
        assert dict(got[0])["event-string"] == "check-sync;reboot=false"
        runtime.db.close()
        assert Session.select().where(Session.ended_at.is_null()).count() == 1
        # The one ``hotdesk simulate`` command, FreeSWITCH flavour: the phone now calls as 101.
        out = subprocess.run(
            [sys.executable, "-m", "hotdesk_cli", "simulate", "logout", "--switch", "freeswitch",
             "--device", "00:15:65:12:34:ab"], env=env, capture_output=True, text=True,
            timeout=30)
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"at 127.0.0.1:{port} as 101" in out.stdout
        assert "HOTDESK_RESULT=logged_out" in out.stdout
        out = subprocess.run(
            [sys.executable, "-m", "hotdesk_cli", "simulate", "login", "--switch", "freeswitch",
             "--device", "00:15:65:12:34:ab", "--extension", "101", "--pin", "11111",
             "--switch-pin", "90817"],
            env=env, capture_output=True, text=True, timeout=30)
        assert out.returncode == 3, out.stdout + out.stderr
        assert "HOTDESK_RESULT=wrong_pin" in out.stdout
        assert "11111" not in out.stdout + out.stderr  # keyed PINs are never echoed
        runtime.db.close()
        assert Session.select().where(Session.ended_at.is_null()).count() == 0
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        fake.stop()
    assert "90817" not in err
    assert "Event Socket connected" in err
