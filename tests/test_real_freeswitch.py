"""Against a real FreeSWITCH: HOTDESK_TEST_ESL=host:port:password (skipped without it)."""

from __future__ import annotations

import os

import pytest

from esl_handlers.inbound import InboundConnection

ESL = os.environ.get("HOTDESK_TEST_ESL", "")
pytestmark = pytest.mark.skipif(not ESL, reason="HOTDESK_TEST_ESL=host:port:password not set")


@pytest.fixture
def inbound():
    host, port, password = ESL.split(":", 2)
    conn = InboundConnection(host, int(port), password, reconnect_max=1.0)
    conn.start()
    try:
        assert conn.wait_connected(10), "could not authenticate to FreeSWITCH"
        yield conn
    finally:
        conn.stop()


def test_api_status(inbound):
    assert inbound.api("status").startswith("UP ")


def test_user_data_unknown_user_is_no_reply(inbound):
    from esl_handlers.inbound import EslError
    with pytest.raises(EslError):
        inbound.api("user_data hotdesk-no-such-user@example.invalid param vm-password")


def test_sendevent_notify_is_accepted(inbound):
    reply = inbound.sendevent("NOTIFY", {
        "profile": os.environ.get("HOTDESK_TEST_ESL_PROFILE", "internal"),
        "user": "hotdesk-no-such-user", "host": "example.invalid",
        "content-type": "application/simple-message-summary",
        "event-string": "check-sync;reboot=false"})
    assert reply.startswith("+OK")
