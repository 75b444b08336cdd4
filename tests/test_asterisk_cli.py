"""``hotdesk agi`` as a real process, driven by ``hotdesk simulate`` (both subprocesses)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from hotdesk.admin.inventory import add_user, default_tenant
from hotdesk.store.models import Session
from hotdesk_agi.simulate_cli import simulate
from tests.drivers.asterisk import make_driver


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hotdesk(*args: str, env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hotdesk_cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_agi_process_serves_simulated_login_and_logout(runtime, desk, database_url):
    add_user(runtime.db, default_tenant(), "104", pin="86420", hotdesk=True)
    port = free_port()
    env = dict(os.environ, HOTDESK_DATABASE_URL=database_url,
               HOTDESK_AGI_LISTEN=f"127.0.0.1:{port}", HOTDESK_AMI_PORT=str(free_port()),
               HOTDESK_AMI_RECONNECT_MAX_SECONDS="1")
    proc = subprocess.Popen([sys.executable, "-m", "hotdesk_cli", "agi"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "hotdesk agi did not listen"
                time.sleep(0.1)
        out = hotdesk("simulate", "login", "--device", "00:15:65:12:34:ab", "--extension",
                      "104", "--pin", "86420", "--source", "127.0.0.1:5071", env=env)
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"calling agi://127.0.0.1:{port}/login as 8001" in out.stdout
        assert ">> GET DATA agent-pass" in out.stdout
        assert "HOTDESK_RESULT=ok" in out.stdout
        # Now the phone is registered as 104: simulate uses that endpoint.
        out = hotdesk("simulate", "logout", "--device", "001565-1234ab", env=env)
        assert "as 104" in out.stdout and "HOTDESK_RESULT=logged_out" in out.stdout
        out = hotdesk("simulate", "logout", "--device", "00:15:65:99:99:99", env=env)
        assert out.returncode == 1 and "no hot-desking phone" in out.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert proc.returncode == 0, err
    # AMI was never there: logged once per connection (NOTIFYs, registrations, emergency
    # calls), not per retry.
    assert err.count("unreachable, retrying") == 3
    assert err.count("(registrations) unreachable, retrying") == 1
    assert err.count("(emergency calls) unreachable, retrying") == 1
    assert "86420" not in err  # the PIN never reaches a log line


def test_simulate_function_against_the_driver(runtime, tmp_path, alice, desk):
    import dataclasses
    with make_driver(runtime, tmp_path) as drv:
        host, port = drv.app.address
        cfg = dataclasses.replace(runtime.config, agi=dataclasses.replace(
            runtime.config.agi, listen=f"{host}:{port}"))
        lines: list[str] = []
        # simulate runs its own loop: call it from a thread other than the driver's loop.
        transcript = simulate(cfg, desk, "login", "101", "1234", "127.0.0.1:5071", lines.append)
        assert transcript.variables["HOTDESK_RESULT"] == "ok"
        assert Session.select().count() == 1
        assert drv.notifies(1)[0][0] == "8001"


def test_agi_workers_share_the_port_and_come_back(runtime, desk, database_url, tmp_path):
    """``hotdesk agi --workers 2``: two processes bind one port (SO_REUSEPORT) and serve
    calls; a worker that dies is started again and the port keeps answering."""
    import asyncio

    from hotdesk_agi.simulate import AsteriskChannel, CallSetup, place_call

    port = free_port()
    env = dict(os.environ, HOTDESK_DATABASE_URL=database_url,
               HOTDESK_AGI_LISTEN=f"127.0.0.1:{port}", HOTDESK_AMI_PORT=str(free_port()),
               HOTDESK_AMI_RECONNECT_MAX_SECONDS="1", HOTDESK_METRICS_LISTEN="")
    log_path = tmp_path / "agi.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "hotdesk_cli", "agi", "--workers", "2"],
                                env=env, stdout=subprocess.DEVNULL, stderr=log_file)
    listening = f"FastAGI listening on 127.0.0.1:{port}"

    def children() -> list[int]:
        path = f"/proc/{proc.pid}/task/{proc.pid}/children"
        return [int(p) for p in open(path).read().split()]

    def wait_listening(count: int) -> None:
        deadline = time.monotonic() + 30
        while log_path.read_text().count(listening) < count:
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)

    async def calls() -> list[str | None]:
        async def one(i: int) -> str | None:
            setup = CallSetup(script="logout", args=["", f"127.0.0.1:{5100 + i}", "8001"],
                              endpoint="8001", dialed="*71", uniqueid=f"w.{i}")
            t = await place_call("127.0.0.1", port, AsteriskChannel(setup))
            return t.variables.get("HOTDESK_RESULT")
        return list(await asyncio.gather(*(one(i) for i in range(8))))

    try:
        wait_listening(2)  # both workers bound the one port
        first = children()
        assert len(first) == 2
        assert asyncio.run(calls()) == ["not_logged_in"] * 8
        os.kill(first[0], signal.SIGKILL)
        wait_listening(3)  # the supervisor started a new one
        assert first[0] not in children() and len(children()) == 2
        assert asyncio.run(calls()) == ["not_logged_in"] * 8
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log_path.read_text()[-2000:]


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False
