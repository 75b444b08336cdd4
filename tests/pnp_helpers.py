"""Running the PnP listener in a background event loop, and SIPp as the phone."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hotdesk.settings import Config
from hotdesk_pnp.listener import PnpListener

SIPP_DIR = Path(__file__).resolve().parent / "sipp"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unicast_config(config: Config, **pnp: object) -> Config:
    """Only the unicast listener on an ephemeral loopback port (no multicast)."""
    values = dict(listen="127.0.0.1:0", multicast=False, t1_ms=100, notify_timeout_seconds=3.0)
    values.update(pnp)
    return dataclasses.replace(config, pnp=dataclasses.replace(config.pnp, **values))


@contextmanager
def running_listener(config: Config, db) -> Iterator[PnpListener]:  # type: ignore[no-untyped-def]
    """Start a PnpListener in its own thread and loop; stop it (bounded) on exit."""
    loop = asyncio.new_event_loop()
    listener = PnpListener(config, db)
    started = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(listener.start())
        except BaseException as exc:  # reported to the test below
            failure.append(exc)
            started.set()
            return
        started.set()
        loop.run_forever()
        listener.close()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10), "listener did not start"
    if failure:
        raise failure[0]
    try:
        yield listener
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def sipp_path() -> str:
    path = shutil.which("sipp")
    if not path:
        pytest.skip("sipp (Debian sip-tester) is not installed")
    return path


def run_sipp(scenario: str, remote: str, workdir: Path, variables: dict[str, str],
             local_port: int | None = None, prefix: list[str] | None = None,
             timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """One SIPp call of ``scenario`` against ``remote``; messages logged to workdir/msg.log."""
    cmd = [*(prefix or []), sipp_path(), remote, "-sf", str(SIPP_DIR / scenario), "-m", "1",
           "-i", "127.0.0.1", "-p", str(local_port or free_udp_port()),
           "-trace_msg", "-message_file", str(workdir / "msg.log"),
           "-trace_logs", "-log_file", str(workdir / "actions.log"),
           "-trace_err", "-error_file", str(workdir / "err.log"),
           "-timeout", "20s", "-timeout_error", "-nostdin"]
    for key, value in variables.items():
        cmd += ["-set", key, value]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=workdir)


def sipp_messages(workdir: Path) -> str:
    path = workdir / "msg.log"
    return path.read_text(errors="replace") if path.exists() else ""
