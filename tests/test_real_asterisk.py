"""Against a real Asterisk (your lab PBX). Skipped unless configured:

    HOTDESK_TEST_AMI=host:port:user:secret          AMI of the Asterisk under test
    HOTDESK_TEST_ASTERISK_SIP=host:port             its PJSIP UDP transport
    HOTDESK_TEST_ASTERISK_PHONE=endpoint:password   a PJSIP endpoint the test may register
                                                    (e.g. a hot-desk idle extension 8002)

The test registers a SIPp phone as that endpoint, sends check-sync through hotdesk's AMI
sender in both forms (Endpoint and contact URI) and checks the phone really received
them: PJSIPNotify answers Success even when nothing is sent, so that alone proves nothing.
The URI form needs ``default_outbound_endpoint`` in pjsip.conf.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from hotdesk.config import AmiConfig
from hotdesk.outbox import NotifyError, NotifyTarget
from hotdesk_agi.ami import AmiClient, AmiNotifySender

AMI = os.environ.get("HOTDESK_TEST_AMI", "")
SIP = os.environ.get("HOTDESK_TEST_ASTERISK_SIP", "")
PHONE = os.environ.get("HOTDESK_TEST_ASTERISK_PHONE", "")
SIPP_DIR = Path(__file__).parent / "sipp"
EVENT = "check-sync;reboot=false"

pytestmark = pytest.mark.skipif(
    not (AMI and SIP and PHONE and shutil.which("sipp")),
    reason="set HOTDESK_TEST_AMI, HOTDESK_TEST_ASTERISK_SIP and HOTDESK_TEST_ASTERISK_PHONE "
           "(and install sipp) to test against a real Asterisk")


def ami_config() -> AmiConfig:
    host, port, user, secret = AMI.split(":", 3)
    return AmiConfig(host=host, port=int(port), username=user, secret=secret)


async def with_sender(fn):  # type: ignore[no-untyped-def]
    client = AmiClient(ami_config())
    client.start()
    try:
        await asyncio.wait_for(client.connected.wait(), 10)
        return await fn(AmiNotifySender(client, asyncio.get_running_loop()))
    finally:
        await client.close()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sipp(scenario: str, port: int, *extra: str, log_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        ["sipp", SIP, "-sf", str(SIPP_DIR / scenario), "-i", "127.0.0.1", "-p", str(port),
         "-nostdin", "-trace_msg", "-message_file", str(log_dir / f"{scenario}.log"),
         "-timeout", "30s", "-timeout_error", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=log_dir)


def test_check_sync_reaches_the_registered_phone_in_both_forms(tmp_path):
    endpoint, password = PHONE.split(":", 1)
    port = free_udp_port()
    reg = sipp("register.xml", port, "-s", endpoint, "-au", endpoint, "-ap", password,
               "-m", "1", log_dir=tmp_path)
    assert reg.wait(30) == 0, reg.stderr.read().decode()
    uas = sipp("notify_uas.xml", port, "-m", "2", log_dir=tmp_path)
    time.sleep(0.5)  # let the UAS bind before anything is sent to it
    contact = f"sip:{endpoint}@127.0.0.1:{port}"

    async def send(sender: AmiNotifySender) -> None:
        await sender.send_async(NotifyTarget(1, endpoint, "", "", EVENT))
        await sender.send_async(NotifyTarget(2, endpoint, "", contact, EVENT))

    asyncio.run(with_sender(send))
    assert uas.wait(30) == 0, "the phone did not receive both NOTIFYs: " + \
        uas.stderr.read().decode()[-500:]
    received = (tmp_path / "notify_uas.xml.log").read_text(errors="replace")
    assert received.count(f"Event: {EVENT}") == 2


def test_unknown_endpoint_is_a_notify_error():
    async def run(sender: AmiNotifySender) -> None:
        with pytest.raises(NotifyError, match="Unable to retrieve endpoint"):
            await sender.send_async(NotifyTarget(1, "hotdesk-no-such-endpoint", "", "",
                                                 "check-sync"))
    asyncio.run(with_sender(run))
