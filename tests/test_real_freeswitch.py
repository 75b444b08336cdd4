"""Against a real FreeSWITCH: HOTDESK_TEST_ESL=host:port:password (skipped without it).

Full calls (``*70``, ``*71``, a wrong PIN) from a SIPp phone through the switch's dialplan
(``socket`` to ``hotdesk esl``) to a real ``hotdesk esl`` process on a throw-away database
also need:

    HOTDESK_TEST_FREESWITCH_SIP=host:port          the SIP profile's address (127.0.0.1:5080)
    HOTDESK_TEST_FREESWITCH_PHONE=user:password    an idle hot-desk phone's directory user (8001)
    HOTDESK_TEST_FREESWITCH_USER=user:password     a hot-desk user's directory user (101)
    HOTDESK_TEST_FREESWITCH_DOMAIN=domain          the directory domain (default: the SIP host)
    HOTDESK_TEST_ESL_LISTEN=host:port              where the dialplan's socket app connects
                                                   (default 127.0.0.1:8084; must be free)
    HOTDESK_TEST_FREESWITCH_DTMF=info|rfc2833      how the phone keys the PIN (default info)
    HOTDESK_TEST_ESL_PROFILE=name                  the sofia profile (default internal)

The user's PIN is their vm-password in the directory (1234); hotdesk holds none. The test
that changes it on the switch also needs:

    HOTDESK_TEST_FREESWITCH_USER_XML=path          the user's directory file it may edit
                                                   (vm-password; restored, then reloadxml)
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from esl_handlers.inbound import InboundConnection
from tests import realswitch

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


# --- full calls through the dialplan to a real ``hotdesk esl`` -------------------------------

SIP = os.environ.get("HOTDESK_TEST_FREESWITCH_SIP", "")
PHONE = os.environ.get("HOTDESK_TEST_FREESWITCH_PHONE", "")
USER = os.environ.get("HOTDESK_TEST_FREESWITCH_USER", "")
DOMAIN = os.environ.get("HOTDESK_TEST_FREESWITCH_DOMAIN", "") or SIP.rsplit(":", 1)[0]
ESL_LISTEN = os.environ.get("HOTDESK_TEST_ESL_LISTEN", "127.0.0.1:8084")
DTMF = os.environ.get("HOTDESK_TEST_FREESWITCH_DTMF", "info")
PROFILE = os.environ.get("HOTDESK_TEST_ESL_PROFILE", "internal")
full_calls = pytest.mark.skipif(
    not (SIP and PHONE and USER and shutil.which("sipp")),
    reason="set HOTDESK_TEST_FREESWITCH_SIP, HOTDESK_TEST_FREESWITCH_PHONE and "
           "HOTDESK_TEST_FREESWITCH_USER (and install sipp) for full calls through FreeSWITCH")


@pytest.fixture
def esl(database_url, tmp_path):
    """``hotdesk esl`` on a fresh database holding the lab phone (idle extension =
    HOTDESK_TEST_FREESWITCH_PHONE) and the user (HOTDESK_TEST_FREESWITCH_USER, no PIN in
    hotdesk: the directory's vm-password 1234 is theirs)."""
    host, port, password = ESL.split(":", 2)
    env = realswitch.clean_env(
        HOTDESK_DATABASE_URL=database_url, HOTDESK_SWITCH_TYPE="freeswitch",
        HOTDESK_TENANT_DEFAULT_DOMAIN=DOMAIN, HOTDESK_ESL_LISTEN=ESL_LISTEN,
        HOTDESK_ESL_HOST=host, HOTDESK_ESL_PORT=port, HOTDESK_ESL_PASSWORD=password,
        HOTDESK_ESL_PROFILE=PROFILE, HOTDESK_NOTIFY_POLL_SECONDS="0.2",
        # One PIN try per call: a wrong PIN ends the call instead of prompting again.
        HOTDESK_POLICY_PIN_TRIES_PER_CALL="1")
    realswitch.prepare_database(env, realswitch.split_credentials(PHONE),
                                realswitch.split_credentials(USER))
    with realswitch.hotdesk_process("esl", env, ESL_LISTEN, tmp_path) as proc:
        yield proc


def phone(tmp_path: Path) -> realswitch.Phone:
    return realswitch.Phone(switch=SIP, domain=DOMAIN, port=realswitch.free_udp_port(),
                            log_dir=tmp_path)


@full_calls
def test_full_login_and_logout_calls(esl, database_url, tmp_path):
    realswitch.login_then_logout(phone(tmp_path), esl, database_url,
                                 realswitch.split_credentials(PHONE),
                                 realswitch.split_credentials(USER), DTMF)


@full_calls
def test_wrong_pin_call_makes_no_session(esl, database_url, tmp_path):
    realswitch.wrong_pin_call(phone(tmp_path), esl, database_url,
                              realswitch.split_credentials(PHONE),
                              realswitch.split_credentials(USER), DTMF)


USER_XML = os.environ.get("HOTDESK_TEST_FREESWITCH_USER_XML", "")


@full_calls
@pytest.mark.skipif(not USER_XML, reason="set HOTDESK_TEST_FREESWITCH_USER_XML (the user's "
                                         "directory file the test may edit)")
def test_voicemail_pin_changed_on_the_switch_works_at_once(esl, inbound, database_url,
                                                           tmp_path):
    def set_voicemail_pin(pin: str) -> None:
        realswitch.replace_in_file(Path(USER_XML),
                                   r'(name="vm-password"\s+value=")[^"]*(")', rf"\g<1>{pin}\2")
        assert "+OK" in inbound.api("reloadxml")

    realswitch.pin_changed_on_the_switch(phone(tmp_path), esl, database_url,
                                         realswitch.split_credentials(PHONE),
                                         realswitch.split_credentials(USER), DTMF,
                                         set_voicemail_pin)
