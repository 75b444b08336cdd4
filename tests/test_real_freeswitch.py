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

With those, ``test_registrations_observed`` checks that ``hotdesk esl`` records what the
switch reports: the phone's registration (account, address), "credentials rejected" for
a wrong password, and the registration as the user after a login.

An emergency call (911) from the user logged in on the desk, with hotdesk up and then
stopped, checked on the trunk's side, also needs:

    HOTDESK_TEST_FREESWITCH_TRUNK=host:port        $${emergency_trunk}: a 911 call from the
                                                   logged-in user is checked there (SIPp UAS)
"""

from __future__ import annotations

import os
import shutil
import time
from contextlib import AbstractContextManager
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


def test_batched_account_reads_answer_like_single_reads(inbound):
    """The drift check's batch over the Event Socket: hundreds of ``api user_data``
    (more than one pipelined window), a missing user among them; each answer equals
    the single read of that account."""
    from esl_handlers.inbound import PIPELINE_WINDOW
    from esl_handlers.switch_view import FreeswitchView
    from hotdesk.switch.accounts import AccountError, AccountMissing, Credentials

    users = [v.split(":", 1) for v in (os.environ.get("HOTDESK_TEST_FREESWITCH_PHONE", ""),
                                       os.environ.get("HOTDESK_TEST_FREESWITCH_USER", ""))
             if v]
    if not users:
        pytest.skip("set HOTDESK_TEST_FREESWITCH_PHONE / _USER (account:password)")
    domain = os.environ.get("HOTDESK_TEST_FREESWITCH_DOMAIN", "") or \
        os.environ.get("HOTDESK_TEST_FREESWITCH_SIP", "127.0.0.1").rsplit(":", 1)[0]
    keys = [(name, domain) for name, _ in users] + [("hotdesk-no-such-user", domain)]
    keys = keys * (PIPELINE_WINDOW // len(keys) + 2)
    view = FreeswitchView(inbound)
    started = time.perf_counter()
    batch = view.read_many(keys)
    elapsed = time.perf_counter() - started
    single = []
    for account, dom in keys[:len(users) + 1]:
        try:
            single.append(view.read(account, dom))
        except AccountError as exc:
            single.append(exc)
    expected = dict(users)
    for (account, _), result in zip(keys, batch, strict=True):
        if account in expected:
            assert isinstance(result, Credentials), result
            assert result.password == expected[account]
        else:
            assert isinstance(result, AccountMissing) and "no directory user" in str(result)
    assert [repr(r) if isinstance(r, Credentials) else str(r) for r in single] == \
        [repr(r) if isinstance(r, Credentials) else str(r) for r in batch[:len(single)]]
    print(f"{len(keys)} accounts read in one batch in {elapsed * 1000:.0f} ms")


# --- full calls through the dialplan to a real ``hotdesk esl`` -------------------------------

def test_a_paced_push_phone_is_sent_through_the_event_socket(inbound, runtime):
    """The pacer releases a push's phone into the outbox and the Event Socket sender sends
    its NOTIFY (the switch takes it: +OK), like any queued check-sync."""
    from datetime import timedelta

    from esl_handlers.notify import EslNotifySender
    from hotdesk.notify import campaigns, outbox, pacing
    from hotdesk.notify.push_models import PushCampaign
    from hotdesk.store.models import utcnow
    from tests.conftest import make_device

    device = make_device(runtime, mac="00:15:65:7e:57:02", extension="87654")  # not on the switch
    push = campaigns.start(runtime.config, "selected", [device.id], actor="test")
    later = utcnow() + timedelta(seconds=1)
    assert pacing.release(runtime.config, now=later).released == 1
    sender = EslNotifySender(inbound, os.environ.get("HOTDESK_TEST_ESL_PROFILE", "internal"))
    assert outbox.drain_once(sender, runtime.config.notify, "real-fs", now=later)["sent"] == 1
    pacing.release(runtime.config, now=later)
    assert PushCampaign.get_by_id(push.id).state == "done"


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


def _esl_process(database_url: str, tmp_path: Path,
                 **notify: str) -> AbstractContextManager[realswitch.HotdeskProcess]:
    """``hotdesk esl`` on a fresh database holding the lab phone (idle extension =
    HOTDESK_TEST_FREESWITCH_PHONE) and the user (HOTDESK_TEST_FREESWITCH_USER, no PIN in
    hotdesk: the directory's vm-password 1234 is theirs)."""
    host, port, password = ESL.split(":", 2)
    env = realswitch.clean_env(
        HOTDESK_DATABASE_URL=database_url, HOTDESK_SWITCH_TYPE="freeswitch",
        HOTDESK_TENANT_DEFAULT_DOMAIN=DOMAIN, HOTDESK_ESL_LISTEN=ESL_LISTEN,
        HOTDESK_ESL_HOST=host, HOTDESK_ESL_PORT=port, HOTDESK_ESL_PASSWORD=password,
        HOTDESK_ESL_PROFILE=PROFILE,
        # One PIN try per call: a wrong PIN ends the call instead of prompting again.
        HOTDESK_POLICY_PIN_TRIES_PER_CALL="1", **{"HOTDESK_NOTIFY_POLL_SECONDS": "0.2", **notify})
    realswitch.prepare_database(env, realswitch.split_credentials(PHONE),
                                realswitch.split_credentials(USER))
    return realswitch.hotdesk_process("esl", env, ESL_LISTEN, tmp_path)


@pytest.fixture
def esl(database_url, tmp_path):
    with _esl_process(database_url, tmp_path) as proc:
        yield proc


@pytest.fixture
def esl_slow_poll(database_url, tmp_path):
    """The same with the NOTIFY drain polling only every 10 minutes, and no grace after
    a call (its NOTIFY is due as soon as the login is committed)."""
    with _esl_process(database_url, tmp_path, HOTDESK_NOTIFY_POLL_SECONDS="600",
                      HOTDESK_NOTIFY_CALL_GRACE_SECONDS="0") as proc:
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
def test_the_calls_send_their_notify_without_waiting_for_the_drain_poll(
        esl_slow_poll, database_url, tmp_path):
    """Each call wakes the drain when its outcome is committed: the phone gets its
    check-sync at once, with the drain's own poll ten minutes away."""
    realswitch.login_then_logout(phone(tmp_path), esl_slow_poll, database_url,
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

# --- accounts kept on the switch ------------------------------------------------------------
#
#   HOTDESK_TEST_FREESWITCH_CONF=/etc/freeswitch     FreeSWITCH's conf directory, writable by
#                                                    the test (it adds and removes
#                                                    directory/default/7191.xml, reloadxml)
#   HOTDESK_TEST_FREESWITCH_XML_CURL=host:port:user:password
#                                                    where the mod_xml_curl binding
#                                                    (gateway-url .../switch/freeswitch/directory)
#                                                    reaches hotdesk web, and its credentials

CONF = os.environ.get("HOTDESK_TEST_FREESWITCH_CONF", "")
XML_CURL = os.environ.get("HOTDESK_TEST_FREESWITCH_XML_CURL", "")
needs_accounts = pytest.mark.skipif(
    not (SIP and CONF and XML_CURL and shutil.which("sipp")),
    reason="accounts on a real FreeSWITCH need HOTDESK_TEST_FREESWITCH_SIP, "
           "HOTDESK_TEST_FREESWITCH_CONF and HOTDESK_TEST_FREESWITCH_XML_CURL")
IDLE_EXT, USER_EXT = "8093", "7191"


def fs_user_xml(user: str, password: str) -> str:
    """A hot-desk user as docs/freeswitch.md shows it. <include> and </include> on lines
    of their own: FreeSWITCH's pre-processor drops every line that holds either."""
    return (f'<include>\n<user id="{user}"><params>'
            f'<param name="password" value="{password}"/>'
            f'<param name="vm-password" value="{realswitch.PIN}"/></params><variables>'
            f'<variable name="user_context" value="default"/>'
            f'<variable name="effective_caller_id_name" value="Test {user}"/>'
            f"</variables></user>\n</include>\n")


def accounts_env(database_url: str, **extra: str) -> dict[str, str]:
    host, port, password = ESL.split(":", 2)
    web_host, web_port, curl_user, curl_password = XML_CURL.split(":", 3)
    return realswitch.clean_env(
        HOTDESK_DATABASE_URL=database_url, HOTDESK_SWITCH_TYPE="freeswitch",
        HOTDESK_TENANT_DEFAULT_DOMAIN=DOMAIN, HOTDESK_ESL_LISTEN=ESL_LISTEN,
        HOTDESK_ESL_HOST=host, HOTDESK_ESL_PORT=port, HOTDESK_ESL_PASSWORD=password,
        HOTDESK_ESL_PROFILE=PROFILE, HOTDESK_NOTIFY_POLL_SECONDS="0.2",
        HOTDESK_WEB_LISTEN=f"{web_host}:{web_port}",
        HOTDESK_SWITCH_DIRECTORY_USERNAME=curl_user,
        HOTDESK_SWITCH_DIRECTORY_PASSWORD=curl_password,
        HOTDESK_SWITCH_CREDENTIALS_CACHE_SECONDS="0", **extra)


@pytest.fixture
def fs_user(inbound):
    """User 7191 in the FreeSWITCH directory (a file of the test's own)."""
    path = Path(CONF) / "directory" / "default" / f"{USER_EXT}.xml"
    path.write_text(fs_user_xml(USER_EXT, "first-7191-secret"))
    inbound.api("reloadxml")
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
        inbound.api("reloadxml")


def web_listen(env: dict[str, str]) -> str:
    return env["HOTDESK_WEB_LISTEN"]


def idle_password(env: dict[str, str]) -> str:
    from hotdesk.store.models import Device

    with realswitch.database(env["HOTDESK_DATABASE_URL"]):
        return Device.get(Device.idle_extension == IDLE_EXT).idle_sip_password


@needs_accounts
def test_phone_added_in_hotdesk_registers_through_xml_curl(database_url, tmp_path):
    env = accounts_env(database_url)
    realswitch.hotdesk(env, "db", "upgrade")
    with realswitch.hotdesk_process("web", env, web_listen(env), tmp_path):
        out = realswitch.hotdesk(env, "device", "add", "--mac", realswitch.MAC,
                                 "--extension", IDLE_EXT, "--name", "Lab desk 93")
        assert "mod_xml_curl" in out
        password = idle_password(env)
        desk = phone(tmp_path)
        reg = desk.register(IDLE_EXT, password)
        assert reg.returncode == 0, f"REGISTER {IDLE_EXT}: {reg.stderr[-800:]}"
        desk.register(IDLE_EXT, password, expires=0)
        realswitch.hotdesk(env, "device", "remove", realswitch.MAC)
        assert desk.register(IDLE_EXT, password).returncode != 0


@needs_accounts
def test_user_without_sip_password_logs_in_and_follows_a_password_change(
        fs_user, inbound, database_url, tmp_path):
    import subprocess
    import time

    from hotdesk.runtime import start
    from hotdesk.settings import load_config
    from hotdesk.switch.upkeep import SwitchUpkeep
    from tests.test_real_asterisk import rendered_account

    env = accounts_env(database_url)
    realswitch.hotdesk(env, "db", "upgrade")
    realswitch.hotdesk(env, "device", "add", "--mac", realswitch.MAC, "--extension", IDLE_EXT)
    realswitch.hotdesk(env, "user", "add", "--extension", USER_EXT, "--name", "Test user",
                       "--pin", realswitch.PIN, "--hotdesk")
    idle = (IDLE_EXT, idle_password(env))
    desk = phone(tmp_path)
    with realswitch.hotdesk_process("web", env, web_listen(env), tmp_path), \
            realswitch.hotdesk_process("esl", env, ESL_LISTEN, tmp_path) as proc:
        try:
            assert desk.register(*idle).returncode == 0
            call = desk.call("login", *idle, f"*70{USER_EXT}", realswitch.PIN + "#", DTMF)
            realswitch.check_call(call, "login", proc)
            assert realswitch.sessions(database_url) == [(USER_EXT, realswitch.MAC, True)]
            account = rendered_account(env)
            assert account == (USER_EXT, "first-7191-secret")
            assert desk.register(*account).returncode == 0

            fs_user.write_text(fs_user_xml(USER_EXT, "second-7191-secret"))
            inbound.api("reloadxml")
            uas = subprocess.Popen(
                ["sipp", SIP, "-sf", str(realswitch.SIPP_DIR / "notify_uas.xml"), "-i",
                 "127.0.0.1", "-p", str(desk.port), "-m", "1", "-nostdin", "-timeout", "30s",
                 "-timeout_error"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                cwd=tmp_path)
            time.sleep(0.5)
            rt = start(load_config(environ=env))
            try:
                summary = SwitchUpkeep(rt.db, rt.config)()
            finally:
                rt.db.close()
            assert "drift=1/1" in summary, summary
            assert uas.wait(30) == 0, "no check-sync after the password change: " + \
                proc.log()[-2000:]
            account = rendered_account(env)
            assert account == (USER_EXT, "second-7191-secret")
            assert desk.register(*account).returncode == 0
        finally:
            realswitch.unregister(desk, idle, (USER_EXT, "second-7191-secret"))


@needs_accounts
def test_doctor_passes_on_the_lab_and_names_a_fault(fs_user, database_url, tmp_path):
    import subprocess
    import sys

    env = accounts_env(database_url)
    web_host, web_port = web_listen(env).rsplit(":", 1)
    env["HOTDESK_PROVISIONING_BASE_URL"] = f"http://{web_host}:{web_port}/prov"
    realswitch.hotdesk(env, "db", "upgrade")
    with realswitch.hotdesk_process("web", env, web_listen(env), tmp_path):
        realswitch.hotdesk(env, "device", "add", "--mac", realswitch.MAC, "--extension",
                           IDLE_EXT)
        realswitch.hotdesk(env, "user", "add", "--extension", USER_EXT, "--hotdesk")
        ok = subprocess.run([sys.executable, "-m", "hotdesk_cli", "doctor"], env=env,
                            capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        realswitch.hotdesk(env, "user", "add", "--extension", "7199", "--hotdesk")
        bad = subprocess.run([sys.executable, "-m", "hotdesk_cli", "doctor"], env=env,
                             capture_output=True, text=True, timeout=60)
        assert bad.returncode == 1
        assert "FAIL user 7199 account: no account 7199 on the switch" in bad.stdout

@full_calls
def test_registrations_observed(esl, database_url, tmp_path):
    realswitch.registrations_observed(phone(tmp_path), esl, database_url,
                                      realswitch.split_credentials(PHONE),
                                      realswitch.split_credentials(USER), DTMF)
# --- emergency calls: the desk's location and callback, with and without hotdesk ---------------

TRUNK = os.environ.get("HOTDESK_TEST_FREESWITCH_TRUNK", "")
needs_trunk = pytest.mark.skipif(
    not (SIP and PHONE and USER and TRUNK and shutil.which("sipp")),
    reason="emergency calls through FreeSWITCH also need HOTDESK_TEST_FREESWITCH_TRUNK="
           "host:port, its $${emergency_trunk} (a SIPp UAS is started there), and "
           "dialplan/freeswitch/hotdesk.xml's hotdesk-emergency as the first match of 911")


@needs_trunk
def test_emergency_call_carries_desk_location_and_callback_even_with_hotdesk_down(
        database_url, tmp_path, inbound):
    host, port, password = ESL.split(":", 2)
    env = realswitch.clean_env(
        HOTDESK_DATABASE_URL=database_url, HOTDESK_SWITCH_TYPE="freeswitch",
        HOTDESK_TENANT_DEFAULT_DOMAIN=DOMAIN, HOTDESK_ESL_HOST=host, HOTDESK_ESL_PORT=port,
        HOTDESK_ESL_PASSWORD=password, HOTDESK_ESL_PROFILE=PROFILE,
        HOTDESK_NOTIFY_POLL_SECONDS="0.2")
    idle, user = realswitch.split_credentials(PHONE), realswitch.split_credentials(USER)
    try:
        result = realswitch.emergency_scenario("esl", env, phone(tmp_path), idle, user, TRUNK)
    finally:
        for account in (user[0], idle[0]):
            for realm in ("hotdesk_emergency_callback", "hotdesk_emergency_location"):
                inbound.api(f"db delete/{realm}/{account}@{DOMAIN}")
    for sent in result.invites:
        assert "<sip:+15550100@" in sent.split("From:", 1)[1].split("\n", 1)[0], sent
        assert f"X-Hotdesk-Location: {realswitch.LOCATION_TEXT}\n" in sent, sent


# --- the drains' pipelined batches -------------------------------------------------------

@full_calls
def test_a_pipelined_notify_batch_reaches_the_phone_and_a_failing_command_fails_alone(
        inbound, tmp_path):
    """The NOTIFY drain's batch: the ``sendevent NOTIFY`` of every target written at once
    on the inbound connection, the replies read in order; the phone (a SIPp UAS on its
    contact) gets both. A command failing in the middle of a batch answers in its place
    and the one after it still succeeds."""
    import subprocess
    import time

    from esl_handlers.inbound import EslUnavailable
    from esl_handlers.notify import EslNotifySender, notify_headers
    from esl_handlers.wire import command
    from hotdesk.notify.outbox import NotifyTarget

    endpoint = PHONE.split(":", 1)[0]
    port = realswitch.free_udp_port()
    contact = f"sip:{endpoint}@127.0.0.1:{port}"
    uas = subprocess.Popen(
        ["sipp", SIP, "-sf", str(realswitch.SIPP_DIR / "notify_uas.xml"), "-i", "127.0.0.1",
         "-p", str(port), "-m", "2", "-nostdin", "-trace_msg",
         "-message_file", str(tmp_path / "uas.log"), "-timeout", "30s", "-timeout_error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        time.sleep(0.5)  # let the UAS bind before anything is sent to it
        sender = EslNotifySender(inbound, PROFILE)
        events = ["check-sync;reboot=false", "check-sync"]
        results = sender.send_many([NotifyTarget(i, endpoint, DOMAIN, contact, event)
                                    for i, event in enumerate(events, 1)])
        assert results == [None, None]
        assert uas.wait(30) == 0, "the phone did not get both NOTIFYs: " + \
            uas.stderr.read().decode()[-500:]
    finally:
        if uas.poll() is None:
            uas.kill()
    received = (tmp_path / "uas.log").read_text(errors="replace").splitlines()
    assert [line for line in received if line.startswith("Event: ")] == \
        [f"Event: {event}" for event in events]

    nowhere = NotifyTarget(3, "hotdesk-no-such-user", "example.invalid", "", "check-sync")
    replies = inbound.request_many([command("sendevent NOTIFY", notify_headers(nowhere, PROFILE)),
                                    command("api hotdesk_no_such_command"),
                                    command("api status")])
    assert not any(isinstance(r, EslUnavailable) for r in replies)
    assert replies[0].reply_text.startswith("+OK ")
    assert replies[1].body == b"-ERR hotdesk_no_such_command Command not found!\n"
    assert replies[2].body.startswith(b"UP ")


def test_a_pipelined_emergency_round_writes_mod_db(inbound):
    """The emergency drain's round: every entry's ``db`` commands written at once; a
    removed entry deletes its rows."""
    from esl_handlers.emergency import EslStoreWriter
    from hotdesk.switch.emergency import Entry, EntryKey

    keys = [EntryKey(f"hotdesk-batch-{n}", "example.invalid", False) for n in (1, 2)]
    writer = EslStoreWriter(inbound)
    try:
        assert writer.write_many([(keys[0], Entry("+15550101", "", "Desk 1, floor 2")),
                                  (keys[1], Entry("", "", "Desk 2"))]) == [None, None]
        name = "hotdesk-batch-{}@example.invalid"
        assert inbound.api(f"db select/hotdesk_emergency_callback/{name.format(1)}") == \
            "+15550101"
        assert inbound.api(f"db select/hotdesk_emergency_location/{name.format(1)}") == \
            "Desk 1, floor 2"
        assert inbound.api(f"db exists/hotdesk_emergency_callback/{name.format(2)}") == "false"
        assert inbound.api(f"db select/hotdesk_emergency_location/{name.format(2)}") == "Desk 2"
    finally:
        assert writer.write_many([(key, None) for key in keys]) == [None, None]
    assert inbound.api(f"db exists/hotdesk_emergency_location/{name.format(2)}") == "false"
