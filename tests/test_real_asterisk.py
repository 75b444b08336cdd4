"""Against a real Asterisk: runs only with HOTDESK_TEST_AMI=host:port:user:secret and
HOTDESK_TEST_ASTERISK_SIP=<endpoint>@<ip:port of a registered test phone, e.g. SIPp>."""

from __future__ import annotations

import asyncio
import os

import pytest

from hotdesk.config import AmiConfig
from hotdesk.outbox import NotifyError, NotifyTarget
from hotdesk_agi.ami import AmiClient, AmiNotifySender

AMI = os.environ.get("HOTDESK_TEST_AMI", "")
SIP = os.environ.get("HOTDESK_TEST_ASTERISK_SIP", "")

pytestmark = pytest.mark.skipif(not (AMI and SIP), reason="set HOTDESK_TEST_AMI and "
                                "HOTDESK_TEST_ASTERISK_SIP to test against a real Asterisk")


def ami_config() -> AmiConfig:
    host, port, user, secret = AMI.split(":", 3)
    return AmiConfig(host=host, port=int(port), username=user, secret=secret)


async def with_client(fn):  # type: ignore[no-untyped-def]
    client = AmiClient(ami_config())
    client.start()
    try:
        await asyncio.wait_for(client.connected.wait(), 10)
        return await fn(AmiNotifySender(client, asyncio.get_running_loop()))
    finally:
        await client.close()


def test_pjsipnotify_to_endpoint_and_uri_is_accepted():
    endpoint, address = SIP.split("@", 1)

    async def run(sender: AmiNotifySender) -> None:
        await sender.send_async(NotifyTarget(1, endpoint, "", "", "check-sync;reboot=false"))
        await sender.send_async(NotifyTarget(2, endpoint, "", f"sip:{endpoint}@{address}",
                                             "check-sync;reboot=false"))
    asyncio.run(with_client(run))


def test_unknown_endpoint_is_a_notify_error():
    async def run(sender: AmiNotifySender) -> None:
        with pytest.raises(NotifyError, match="Unable to retrieve endpoint"):
            await sender.send_async(NotifyTarget(1, "hotdesk-no-such-endpoint", "", "",
                                                 "check-sync"))
    asyncio.run(with_client(run))
