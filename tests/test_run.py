"""``hotdesk run`` as a real process tree: four components up, quiet while the switch is
away, and gone after SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def healthz(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def wait_for(predicate: Callable[[], bool], proc: subprocess.Popen, log: Path,
             timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"hotdesk run exited:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"timed out; log so far:\n{log.read_text()}"
        time.sleep(0.1)


def test_hotdesk_run_starts_all_components_stays_quiet_and_stops(tmp_path):
    agi, esl, web = free_port(), free_port(), free_port()
    ami_closed, esl_closed = free_port(), free_port()  # nothing listens there
    env = dict(os.environ, HOTDESK_DATABASE_URL=f"sqlite:///{tmp_path / 'run.db'}",
               HOTDESK_AGI_LISTEN=f"127.0.0.1:{agi}", HOTDESK_ESL_LISTEN=f"127.0.0.1:{esl}",
               HOTDESK_WEB_LISTEN=f"127.0.0.1:{web}", HOTDESK_AMI_HOST="127.0.0.1",
               HOTDESK_AMI_PORT=str(ami_closed), HOTDESK_AMI_RECONNECT_MAX_SECONDS="0.5",
               HOTDESK_ESL_HOST="127.0.0.1", HOTDESK_ESL_PORT=str(esl_closed),
               HOTDESK_ESL_RECONNECT_MAX_SECONDS="0.5", HOTDESK_WEB_SECRET_KEY="k" * 40)
    env.pop("HOTDESK_CONFIG", None)
    log = tmp_path / "run.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "hotdesk_cli", "run"], env=env,
                                stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        wait_for(lambda: accepts(agi) and accepts(esl), proc, log)
        wait_for(lambda: healthz(web), proc, log)
        wait_for(lambda: "unreachable, retrying" in log.read_text()
                 and f"Event Socket to FreeSWITCH at 127.0.0.1:{esl_closed} is down"
                 in log.read_text() and "worker tick 1" in log.read_text(), proc, log)
        # AMI and ESL keep retrying (twice a second at most): the log does not grow.
        before = len(log.read_text().splitlines())
        time.sleep(4)
        text = log.read_text()
        grown = text.splitlines()[before:]
        assert len(grown) <= 2, "\n".join(grown)
        # Once per AMI connection (NOTIFYs, registrations), not once per retry.
        assert text.count("unreachable, retrying") == 2
        assert text.count("(registrations) unreachable, retrying") == 1
        assert "Traceback" not in text
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log.read_text()
    # Every child is gone with it: nothing listens any more.
    assert not accepts(agi) and not accepts(esl) and not accepts(web)
    assert "Traceback" not in log.read_text()
