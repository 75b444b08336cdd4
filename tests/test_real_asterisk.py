"""Against a real Asterisk (your lab PBX). Skipped unless configured:

    HOTDESK_TEST_AMI=host:port:user:secret          AMI of the Asterisk under test
    HOTDESK_TEST_ASTERISK_SIP=host:port             its PJSIP UDP transport
    HOTDESK_TEST_ASTERISK_PHONE=endpoint:password   a PJSIP endpoint the test may register
                                                    (e.g. a hot-desk idle extension 8002)

The test registers a SIPp phone as that endpoint, sends check-sync through hotdesk's AMI
sender in both forms (Endpoint and contact URI) and checks the phone really received
them: PJSIPNotify answers Success even when nothing is sent, so that alone proves nothing.
The URI form needs ``default_outbound_endpoint`` in pjsip.conf.

Full calls (``*70``, ``*71``, a wrong PIN) through the switch's dialplan to a real
``hotdesk agi`` process on a throw-away database also need:

    HOTDESK_TEST_ASTERISK_USER=extension:password   a hot-desk user's PJSIP endpoint (101)
    HOTDESK_TEST_AGI_LISTEN=host:port               where the dialplan's AGI() connects
                                                    (default 127.0.0.1:4573; must be free)
    HOTDESK_TEST_ASTERISK_DTMF=info|rfc2833         the phone endpoint's dtmf_mode (info)

The user's PIN is their voicemail PIN on the switch (voicemail.conf: ``101 => 1234``);
hotdesk holds none. The test that changes it on the switch also needs:

    HOTDESK_TEST_ASTERISK_VOICEMAIL_CONF=path       the voicemail.conf it may edit (the
                                                    user's line; restored afterwards) and
                                                    an AMI user allowed ``command``
                                                    (``voicemail reload``)

With those, ``test_registrations_observed`` checks that ``hotdesk agi`` records what the
switch reports: the phone's registration (account, address), "credentials rejected" for
a wrong password, and the registration as the user after a login.

An emergency call (911) from the user logged in on the desk, with hotdesk up and then
stopped, checked on the trunk's side (a SIPp UAS the test starts), also needs:

    HOTDESK_TEST_ASTERISK_TRUNK=host:port           where the emergency trunk sends 911
    HOTDESK_TEST_ASTERISK_GEOLOC=1                  the trunk has a geoloc_outgoing_call_profile
                                                    (docs/emergency.md): require PIDF-LO
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hotdesk.notify.outbox import NotifyError, NotifyTarget
from hotdesk.settings import AmiConfig
from hotdesk_agi.ami import AmiClient, AmiNotifySender
from tests import realswitch

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


def registered_phone(tmp_path: Path, notifies: int) -> tuple[str, int, subprocess.Popen]:
    """The test phone registered from a SIPp port, then a SIPp UAS on that port waiting
    for ``notifies`` NOTIFYs: (endpoint, port, UAS process)."""
    endpoint, password = PHONE.split(":", 1)
    port = free_udp_port()
    reg = sipp("register.xml", port, "-s", endpoint, "-au", endpoint, "-ap", password,
               "-m", "1", log_dir=tmp_path)
    assert reg.wait(30) == 0, reg.stderr.read().decode()
    uas = sipp("notify_uas.xml", port, "-m", str(notifies), log_dir=tmp_path)
    time.sleep(0.5)  # let the UAS bind before anything is sent to it
    return endpoint, port, uas


def test_check_sync_reaches_the_registered_phone_in_both_forms(tmp_path):
    endpoint, port, uas = registered_phone(tmp_path, 2)
    contact = f"sip:{endpoint}@127.0.0.1:{port}"

    async def send(sender: AmiNotifySender) -> None:
        await sender.send_async(NotifyTarget(1, endpoint, "", "", EVENT))
        await sender.send_async(NotifyTarget(2, endpoint, "", contact, EVENT))

    asyncio.run(with_sender(send))
    assert uas.wait(30) == 0, "the phone did not receive both NOTIFYs: " + \
        uas.stderr.read().decode()[-500:]
    received = (tmp_path / "notify_uas.xml.log").read_text(errors="replace")
    assert received.count(f"Event: {EVENT}") == 2


def test_a_pipelined_batch_reaches_the_phone_and_a_refused_action_fails_alone(tmp_path):
    """The drain's batch: three PJSIPNotify written together on one AMI connection; the
    one for an unknown endpoint fails in its place, the phone gets the other two."""
    endpoint, port, uas = registered_phone(tmp_path, 2)
    contact = f"sip:{endpoint}@127.0.0.1:{port}"

    async def send(sender: AmiNotifySender) -> list:
        return await sender.send_many_async([
            NotifyTarget(1, endpoint, "", "", EVENT),
            NotifyTarget(2, "hotdesk-no-such-endpoint", "", "", EVENT),
            NotifyTarget(3, endpoint, "", contact, EVENT)])

    results = asyncio.run(with_sender(send))
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], NotifyError)
    assert "Unable to retrieve endpoint" in str(results[1])
    assert uas.wait(30) == 0, "the phone did not receive both NOTIFYs: " + \
        uas.stderr.read().decode()[-500:]
    received = (tmp_path / "notify_uas.xml.log").read_text(errors="replace")
    assert received.count(f"Event: {EVENT}") == 2


def test_a_paced_push_reaches_the_registered_phone(runtime, tmp_path):
    """A push campaign's phone is released by the pacer and its NOTIFY, sent through the
    real AMI, reaches the phone registered on the switch."""
    from datetime import timedelta

    from hotdesk.notify import campaigns, outbox, pacing
    from hotdesk.notify.push_models import PushCampaign
    from hotdesk.store.models import Device, utcnow
    from tests.conftest import make_device

    endpoint, port, uas = registered_phone(tmp_path, 1)
    device = make_device(runtime, mac="00:15:65:7e:57:01", extension=endpoint)
    Device.update(last_address=f"127.0.0.1:{port}").where(Device.id == device.id).execute()
    push = campaigns.start(runtime.config, "selected", [device.id], actor="test")
    later = utcnow() + timedelta(seconds=1)  # the push owes one phone by then
    assert pacing.release(runtime.config, now=later).released == 1
    rows = outbox.claim_due(10, "real-asterisk", now=later)
    assert [r.contact_uri for r in rows] == [f"sip:{endpoint}@127.0.0.1:{port}"]

    async def send(sender: AmiNotifySender) -> None:
        await sender.send_async(outbox.target_of(rows[0]))

    asyncio.run(with_sender(send))
    assert outbox.mark_sent(rows[0], "real-asterisk", now=later)
    assert uas.wait(30) == 0, "the phone did not receive the NOTIFY: " + \
        uas.stderr.read().decode()[-500:]
    assert f"Event: {EVENT}" in (tmp_path / "notify_uas.xml.log").read_text(errors="replace")
    pacing.release(runtime.config, now=later)
    assert PushCampaign.get_by_id(push.id).state == "done"


def test_unknown_endpoint_is_a_notify_error():
    async def run(sender: AmiNotifySender) -> None:
        with pytest.raises(NotifyError, match="Unable to retrieve endpoint"):
            await sender.send_async(NotifyTarget(1, "hotdesk-no-such-endpoint", "", "",
                                                 "check-sync"))
    asyncio.run(with_sender(run))


def test_batched_account_reads_answer_like_single_reads():
    """The drift check's batch: hundreds of accounts (more than one pipelined window),
    a missing endpoint among them, read in two pipelined passes on one connection; each
    answer equals the single read of that account."""
    from hotdesk.switch.accounts import AccountError, AccountMissing, Credentials
    from hotdesk_agi.ami_sync import WINDOW, BlockingAmi
    from hotdesk_agi.switch_view import AsteriskView

    accounts = [value.split(":", 1) for value in (PHONE, USER) if value]
    keys = [(name, "default") for name, _ in accounts] + [("hotdesk-no-such-endpoint",
                                                          "default")]
    keys = keys * (WINDOW // len(keys) + 2)
    view = AsteriskView(BlockingAmi(ami_config()))
    try:
        started = time.perf_counter()
        batch = view.read_many(keys)
        elapsed = time.perf_counter() - started
        single = []
        for account, domain in keys[:len(accounts) + 1]:
            try:
                single.append(view.read(account, domain))
            except AccountError as exc:
                single.append(exc)
    finally:
        view.close()
    expected = {name: password for name, password in accounts}
    for (account, _), result in zip(keys, batch, strict=True):
        if account in expected:
            assert isinstance(result, Credentials), result
            assert result.password == expected[account]
        else:
            assert isinstance(result, AccountMissing) and "no pjsip endpoint" in str(result)
    assert [repr(r) if isinstance(r, Credentials) else str(r) for r in single] == \
        [repr(r) if isinstance(r, Credentials) else str(r) for r in batch[:len(single)]]
    print(f"{len(keys)} accounts read in one batch in {elapsed * 1000:.0f} ms")


# --- full calls through the dialplan to a real ``hotdesk agi`` -------------------------------

USER = os.environ.get("HOTDESK_TEST_ASTERISK_USER", "")
AGI_LISTEN = os.environ.get("HOTDESK_TEST_AGI_LISTEN", "127.0.0.1:4573")
DTMF = os.environ.get("HOTDESK_TEST_ASTERISK_DTMF", "info")
needs_user = pytest.mark.skipif(
    not USER, reason="full calls against a real Asterisk need HOTDESK_TEST_AMI, "
                     "HOTDESK_TEST_ASTERISK_SIP, HOTDESK_TEST_ASTERISK_PHONE and "
                     "HOTDESK_TEST_ASTERISK_USER=extension:password (a hot-desk user's endpoint)")


@pytest.fixture
def agi(database_url, tmp_path):
    """``hotdesk agi`` on a fresh database holding the lab phone (idle extension =
    HOTDESK_TEST_ASTERISK_PHONE) and the user (HOTDESK_TEST_ASTERISK_USER, no PIN in
    hotdesk: the switch's voicemail PIN 1234 is theirs)."""
    ami = ami_config()
    env = realswitch.clean_env(
        HOTDESK_DATABASE_URL=database_url, HOTDESK_SWITCH_TYPE="asterisk",
        HOTDESK_AGI_LISTEN=AGI_LISTEN, HOTDESK_AMI_HOST=ami.host, HOTDESK_AMI_PORT=str(ami.port),
        HOTDESK_AMI_USERNAME=ami.username, HOTDESK_AMI_SECRET=ami.secret,
        HOTDESK_NOTIFY_POLL_SECONDS="0.2",
        # One PIN try per call: a wrong PIN ends the call instead of prompting again.
        HOTDESK_POLICY_PIN_TRIES_PER_CALL="1")
    realswitch.prepare_database(env, realswitch.split_credentials(PHONE),
                                realswitch.split_credentials(USER))
    with realswitch.hotdesk_process("agi", env, AGI_LISTEN, tmp_path) as proc:
        yield proc


def phone(tmp_path: Path) -> realswitch.Phone:
    return realswitch.Phone(switch=SIP, domain=SIP.rsplit(":", 1)[0],
                            port=realswitch.free_udp_port(), log_dir=tmp_path)


@needs_user
def test_full_login_and_logout_calls(agi, database_url, tmp_path):
    realswitch.login_then_logout(phone(tmp_path), agi, database_url,
                                 realswitch.split_credentials(PHONE),
                                 realswitch.split_credentials(USER), DTMF)


@needs_user
def test_wrong_pin_call_makes_no_session(agi, database_url, tmp_path):
    realswitch.wrong_pin_call(phone(tmp_path), agi, database_url,
                              realswitch.split_credentials(PHONE),
                              realswitch.split_credentials(USER), DTMF)


VOICEMAIL_CONF = os.environ.get("HOTDESK_TEST_ASTERISK_VOICEMAIL_CONF", "")


@needs_user
@pytest.mark.skipif(not VOICEMAIL_CONF, reason="set HOTDESK_TEST_ASTERISK_VOICEMAIL_CONF "
                                               "(a voicemail.conf the test may edit)")
def test_voicemail_pin_changed_on_the_switch_works_at_once(agi, database_url, tmp_path):
    extension = realswitch.split_credentials(USER)[0]

    def set_voicemail_pin(pin: str) -> None:
        realswitch.replace_in_file(Path(VOICEMAIL_CONF), rf"^(\s*{extension}\s*=>\s*)\d+",
                                   rf"\g<1>{pin}")

        async def reload(sender: AmiNotifySender) -> None:
            reply = await sender.client.action([("Action", "Command"),
                                                ("Command", "voicemail reload")])
            assert reply.get("Response") == "Success", reply

        asyncio.run(with_sender(reload))

    realswitch.pin_changed_on_the_switch(phone(tmp_path), agi, database_url,
                                         realswitch.split_credentials(PHONE),
                                         realswitch.split_credentials(USER), DTMF,
                                         set_voicemail_pin)

# --- accounts kept on the switch ------------------------------------------------------------
#
#   HOTDESK_TEST_ASTERISK_CONF=/etc/asterisk   the switch's config directory, writable by
#                                              the test: it adds (and removes afterwards)
#                                              #tryinclude lines in pjsip.conf and
#                                              voicemail.conf and its own include files.

CONF = os.environ.get("HOTDESK_TEST_ASTERISK_CONF", "")
needs_conf = pytest.mark.skipif(
    not (CONF and USER), reason="accounts on a real Asterisk need HOTDESK_TEST_ASTERISK_CONF "
                                "(its writable config directory) and HOTDESK_TEST_ASTERISK_USER")
IDLE_EXT, USER_EXT = "8091", "7191"


@pytest.fixture
def lab_accounts(tmp_path):
    """Two include files of the test's own in the switch's config: the idle accounts
    hotdesk writes and one hot-desk user (as an admin would write it), with voicemail."""
    from tests.realswitch_accounts import added_lines, own_file, pjsip_user

    conf = Path(CONF)
    accounts, users = conf / "pjsip_hotdesk_test_idle.conf", conf / "pjsip_hotdesk_test_users.conf"
    voicemail = conf / "voicemail_hotdesk_test.conf"
    with own_file(accounts), own_file(users, pjsip_user(USER_EXT, "first-7191-secret")), \
            own_file(voicemail, f"{USER_EXT} => {realswitch.PIN},Test {USER_EXT}\n"), \
            added_lines(conf / "pjsip.conf", [f"#tryinclude {accounts.name}",
                                              f"#tryinclude {users.name}"]), \
            added_lines(conf / "voicemail.conf", [f"#tryinclude {voicemail.name}"]):
        reload_modules("res_pjsip.so", "app_voicemail.so")
        yield {"accounts": accounts, "users": users}
    reload_modules("res_pjsip.so", "app_voicemail.so")


def reload_modules(*modules: str) -> None:
    from hotdesk_agi.ami_sync import BlockingAmi

    ami = BlockingAmi(ami_config())
    try:
        for module in modules:
            reply = ami.action([("Action", "ModuleLoad"), ("LoadType", "reload"),
                                ("Module", module)])
            assert reply.get("Response") == "Success", reply
    finally:
        ami.close()


def accounts_env(database_url: str, accounts: Path, **extra: str) -> dict[str, str]:
    ami = ami_config()
    return realswitch.clean_env(
        HOTDESK_DATABASE_URL=database_url, HOTDESK_SWITCH_TYPE="asterisk",
        HOTDESK_SWITCH_ACCOUNTS_FILE=str(accounts), HOTDESK_SWITCH_IDLE_CODECS="ulaw",
        HOTDESK_SWITCH_IDLE_DTMF_MODE=DTMF if DTMF == "info" else "rfc4733",
        HOTDESK_AGI_LISTEN=AGI_LISTEN, HOTDESK_AMI_HOST=ami.host,
        HOTDESK_AMI_PORT=str(ami.port), HOTDESK_AMI_USERNAME=ami.username,
        HOTDESK_AMI_SECRET=ami.secret, HOTDESK_NOTIFY_POLL_SECONDS="0.2",
        HOTDESK_SWITCH_CREDENTIALS_CACHE_SECONDS="0", **extra)


def rendered_account(env: dict[str, str]) -> tuple[str, str]:
    """The account the phone's config carries now, rendered as hotdesk web serves it;
    the phone's fetch is recorded as the provisioning server would."""
    from hotdesk.provisioning.render import ConfigCache
    from hotdesk.settings import load_config
    from hotdesk.store.models import Device
    from tests.realswitch_accounts import config_account

    config = load_config(environ=env)
    with realswitch.database(env["HOTDESK_DATABASE_URL"]):
        device = Device.get(Device.mac == realswitch.MAC)
        text = ConfigCache(config).get(device, f"{realswitch.MAC}.cfg")
        Device.update(fetched_version=device.config_version).where(
            Device.id == device.id).execute()
    return config_account(text)


def idle_password(env: dict[str, str], extension: str) -> str:
    from hotdesk.store.models import Device

    with realswitch.database(env["HOTDESK_DATABASE_URL"]):
        return Device.get(Device.idle_extension == extension).idle_sip_password


@needs_conf
def test_phone_added_in_hotdesk_registers_without_editing_the_switch(
        lab_accounts, database_url, tmp_path):
    env = accounts_env(database_url, lab_accounts["accounts"])
    realswitch.hotdesk(env, "db", "upgrade")
    out = realswitch.hotdesk(env, "device", "add", "--mac", realswitch.MAC, "--extension",
                             IDLE_EXT, "--name", "Lab desk 91")
    assert "res_pjsip reloaded" in out
    password = idle_password(env, IDLE_EXT)
    assert password not in out
    desk = phone(tmp_path)
    reg = desk.register(IDLE_EXT, password)
    assert reg.returncode == 0, f"REGISTER {IDLE_EXT} refused: {reg.stderr[-800:]}"
    desk.register(IDLE_EXT, password, expires=0)
    realswitch.hotdesk(env, "device", "remove", realswitch.MAC)
    reg = desk.register(IDLE_EXT, password)
    assert reg.returncode != 0, "the removed phone's account still registers"


@needs_conf
def test_user_without_sip_password_logs_in_and_follows_a_password_change(
        lab_accounts, database_url, tmp_path):
    from hotdesk.runtime import start
    from hotdesk.settings import load_config
    from hotdesk.switch.upkeep import SwitchUpkeep

    env = accounts_env(database_url, lab_accounts["accounts"])
    realswitch.hotdesk(env, "db", "upgrade")
    realswitch.hotdesk(env, "device", "add", "--mac", realswitch.MAC, "--extension", IDLE_EXT)
    realswitch.hotdesk(env, "user", "add", "--extension", USER_EXT, "--name", "Test user",
                       "--pin", realswitch.PIN, "--hotdesk")  # no SIP password
    idle = (IDLE_EXT, idle_password(env, IDLE_EXT))
    desk = phone(tmp_path)
    with realswitch.hotdesk_process("agi", env, AGI_LISTEN, tmp_path) as proc:
        try:
            assert desk.register(*idle).returncode == 0
            call = desk.call("login", *idle, f"*70{USER_EXT}", realswitch.PIN + "#", DTMF)
            realswitch.check_call(call, "login", proc)
            assert realswitch.sessions(database_url) == [(USER_EXT, realswitch.MAC, True)]
            assert realswitch.notifies_to(call.trace, desk.port), proc.log()[-2000:]
            # The config carries the account read from Asterisk; the phone registers with it.
            account = rendered_account(env)
            assert account == (USER_EXT, "first-7191-secret")
            reg = desk.register(*account)
            assert reg.returncode == 0, f"REGISTER {USER_EXT}: {reg.stderr[-800:]}"

            # The password changes on the switch only; one worker tick later the phone is
            # told to re-sync and its config carries the new password.
            from tests.realswitch_accounts import pjsip_user

            lab_accounts["users"].write_text(pjsip_user(USER_EXT, "second-7191-secret"))
            reload_modules("res_pjsip.so")
            uas = sipp("notify_uas.xml", desk.port, "-m", "1", log_dir=tmp_path)
            time.sleep(0.5)
            rt = start(load_config(environ=env))
            try:
                summary = SwitchUpkeep(rt.db, rt.config)()
            finally:
                rt.db.close()
            assert "drift=1/1" in summary, summary
            assert uas.wait(30) == 0, "no check-sync after the password change: " + \
                proc.log()[-2000:]
            received = (tmp_path / "notify_uas.xml.log").read_text(errors="replace")
            assert f"Event: {EVENT}" in received, received[-1500:]
            account = rendered_account(env)
            assert account == (USER_EXT, "second-7191-secret")
            assert desk.register(*account).returncode == 0
            assert desk.register(USER_EXT, "first-7191-secret").returncode != 0
        finally:
            realswitch.unregister(desk, idle, (USER_EXT, "second-7191-secret"))


@needs_conf
def test_doctor_passes_on_the_lab_and_names_a_fault(lab_accounts, database_url, tmp_path):
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = accounts_env(database_url, lab_accounts["accounts"],
                       HOTDESK_PROVISIONING_BASE_URL=f"http://127.0.0.1:{server.server_port}/")
    try:
        realswitch.hotdesk(env, "db", "upgrade")
        realswitch.hotdesk(env, "device", "add", "--mac", realswitch.MAC, "--extension",
                           IDLE_EXT)
        realswitch.hotdesk(env, "user", "add", "--extension", USER_EXT, "--hotdesk")
        ok = subprocess.run([sys.executable, "-m", "hotdesk_cli", "doctor"], env=env,
                            capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        # A hot-desk user the switch does not know, and a voicemail box without a PIN
        realswitch.hotdesk(env, "user", "add", "--extension", "7199", "--hotdesk")
        bad = subprocess.run([sys.executable, "-m", "hotdesk_cli", "doctor"], env=env,
                             capture_output=True, text=True, timeout=60)
        assert bad.returncode == 1
        assert "FAIL user 7199 account: no account 7199 on the switch" in bad.stdout, bad.stdout
    finally:
        server.shutdown()

@needs_user
def test_registrations_observed(agi, database_url, tmp_path):
    realswitch.registrations_observed(phone(tmp_path), agi, database_url,
                                      realswitch.split_credentials(PHONE),
                                      realswitch.split_credentials(USER), DTMF)
# --- emergency calls: the desk's location and callback, with and without hotdesk ---------------

TRUNK = os.environ.get("HOTDESK_TEST_ASTERISK_TRUNK", "")
# Set to 1 when the trunk endpoint has a geoloc_outgoing_call_profile (docs/asterisk.md):
# the INVITE must then carry the desk's civic address as PIDF-LO.
GEOLOC = os.environ.get("HOTDESK_TEST_ASTERISK_GEOLOC", "") == "1"
needs_trunk = pytest.mark.skipif(
    not (USER and TRUNK), reason="emergency calls against a real Asterisk also need "
    "HOTDESK_TEST_ASTERISK_TRUNK=host:port, where its emergency trunk sends 911 (a SIPp UAS "
    "is started there)")


async def _astdb(action: str, family: str, key: str = "") -> dict[str, str]:
    client = AmiClient(ami_config())
    client.start()
    try:
        await asyncio.wait_for(client.connected.wait(), 10)
        headers = [("Action", action), ("Family", family)] + ([("Key", key)] if key else [])
        return await client.action(headers)
    finally:
        await client.close()


@needs_trunk
def test_emergency_call_carries_desk_location_and_callback_even_with_hotdesk_down(
        database_url, tmp_path):
    ami = ami_config()
    env = realswitch.clean_env(
        HOTDESK_DATABASE_URL=database_url, HOTDESK_SWITCH_TYPE="asterisk",
        HOTDESK_AMI_HOST=ami.host, HOTDESK_AMI_PORT=str(ami.port),
        HOTDESK_AMI_USERNAME=ami.username, HOTDESK_AMI_SECRET=ami.secret,
        HOTDESK_NOTIFY_POLL_SECONDS="0.2")
    idle, user = realswitch.split_credentials(PHONE), realswitch.split_credentials(USER)
    try:
        result = realswitch.emergency_scenario("agi", env, phone(tmp_path), idle, user, TRUNK)
    finally:
        for account in (user[0], idle[0]):
            asyncio.run(_astdb("DBDelTree", f"hotdesk/emergency/{account}"))
    for sent in result.invites:
        assert "<sip:+15550100@" in sent.split("From:", 1)[1].split("\n", 1)[0], sent
        if GEOLOC:
            assert "Geolocation: <cid:" in sent, sent
            assert "<ca:FLR>3</ca:FLR>" in sent and "<ca:ROOM>3.01</ca:ROOM>" in sent, sent
