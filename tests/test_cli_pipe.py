"""``hotdesk provision url MAC | head -1``: a reader that closes the pipe early ends the
command quietly, without a BrokenPipeError traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.test_cli import hotdesk


def test_closed_pipe_gives_no_traceback(database_url):
    hotdesk(database_url, "db", "upgrade")
    hotdesk(database_url, "device", "add", "--mac", "00:15:65:12:34:03", "--extension", "8001",
            "--sip-password", "secret8001")
    script = Path(sys.executable).parent / "hotdesk"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "hotdesk_cli"]
    env = {**os.environ, "HOTDESK_DATABASE_URL": database_url}
    proc = subprocess.Popen([*cmd, "provision", "url", "00:15:65:12:34:03"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first line is written
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
