"""Users' SIP accounts read live from FreeSWITCH (ESL user_data), the idle phones'
directory entries served to mod_xml_curl, drift and doctor, against the ESL fake."""

from __future__ import annotations

import base64
import dataclasses
import os
import subprocess
import sys

import pytest

from esl_handlers.inbound import InboundConnection
from esl_handlers.switch_view import FreeswitchView
from hotdesk.admin.inventory import DeviceSpec, add_device, add_user, default_tenant
from hotdesk.provisioning.render import ConfigCache
from hotdesk.runtime import Runtime
from hotdesk.settings import Config, EslConfig, SwitchConfig
from hotdesk.store.models import Device
from hotdesk.switch import doctor, drift, idle_accounts
from hotdesk.switch.accounts import AccountError, AccountMissing, CachedReader
from tests.fakes.freeswitch_accounts import DirectoryServer
from webadmin.app import create_app

DIRECTORY_PASSWORD = "xml-curl-secret"
# What mod_xml_curl POSTs for a directory look-up (mod_xml_curl.c: hostname, section,
# tag_name, key_name, key_value, then the REQUEST_PARAMS event headers urlencoded;
# switch_xml.c adds key, user, domain).
CURL_BODY = ("hostname=vm&section=directory&tag_name=domain&key_name=name&key_value=default"
             "&Event-Name=REQUEST_PARAMS&Core-UUID=1&action=sip_auth&sip_profile=internal"
             "&sip_user_agent=SIPp&sip_auth_username={user}&sip_auth_realm=default"
             "&key=id&user={user}&domain=default&ip=127.0.0.1")


@pytest.fixture
def fs():
    server = DirectoryServer()
    server.add_user("101", "default", password="secret101", vm_password="1234")
    server.add_user("102", "default", a1_hash="0123456789abcdef0123456789abcdef")
    server.hotdesk_dialplan(["default", "hotdesk-idle"])
    server.start()
    yield server
    server.stop()


@pytest.fixture
def cfg(config: Config, fs: DirectoryServer) -> Config:
    return dataclasses.replace(
        config, esl=EslConfig(host="127.0.0.1", port=fs.address[1]),
        switch=SwitchConfig(type="freeswitch", directory_password=DIRECTORY_PASSWORD))


@pytest.fixture
def view(cfg):
    inbound = InboundConnection(cfg.esl.host, cfg.esl.port, cfg.esl.password)
    inbound.start()
    assert inbound.wait_connected(5)
    yield FreeswitchView(inbound, needs_xml_curl=True)
    inbound.stop()


def test_live_account_read_and_a1_hash_error(view, fs):
    creds = view.read("101", "default")
    assert (creds.auth_username, creds.password) == ("101", "secret101")
    assert "api user_data 101@default param password" in fs.commands
    with pytest.raises(AccountMissing, match="only an a1-hash"):
        view.read("102", "default")
    with pytest.raises(AccountMissing, match="no directory user 999@default"):
        view.read("999", "default")
    with pytest.raises(AccountMissing, match="not a valid directory user"):
        view.read("1 0", "default")


def test_switch_down_is_a_clear_error(view, fs):
    fs.stop()
    with pytest.raises(AccountError, match="Event Socket"):
        view.read("101", "default")


def login(runtime: Runtime, device: Device, extension: str) -> None:
    from hotdesk.calls.service import CallContext

    ctx = CallContext(switch="freeswitch", call_id="t", endpoint=device.idle_extension,
                      source="127.0.0.1:5071")
    assert runtime.service.login(device.id, extension, "1234", ctx).outcome.name == "LOGGED_IN"


def test_config_and_drift_with_the_directory_password(runtime, cfg, view, fs, desk):
    add_user(runtime.db, default_tenant(), "101", name="Alice", pin="1234", hotdesk=True)
    login(runtime, desk, "101")
    cache = ConfigCache(cfg, accounts=CachedReader(view, 0.0))
    assert "account.1.password = secret101" in cache.get(Device.get_by_id(desk.id),
                                                         "0015651234ab.cfg")
    Device.update(fetched_version=Device.config_version).where(Device.id == desk.id).execute()
    fs.users["101@default"]["param:password"] = "rotated"
    result = drift.heal(runtime.db, cfg, CachedReader(view, 0.0))
    assert result.reprovisioned == 1
    assert "account.1.password = rotated" in cache.get(Device.get_by_id(desk.id),
                                                       "0015651234ab.cfg")


@pytest.fixture
def client(runtime, cfg, tmp_path):
    web = dataclasses.replace(cfg.web, secret_key_file=str(tmp_path / "secret"))
    app = create_app(Runtime(config=dataclasses.replace(cfg, web=web), db=runtime.db,
                             service=runtime.service))
    app.testing = True
    return app.test_client()


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}",
            "Content-Type": "application/x-www-form-urlencoded"}


def test_xml_curl_directory_serves_managed_idle_phones_only(runtime, cfg, client):
    spec = idle_accounts.prepare(DeviceSpec(mac="00:15:65:00:00:09", extension="8009",
                                            sip_password="", name="Desk <9>"), cfg)
    assert spec.idle_managed
    add_device(runtime.db, default_tenant(), spec, config=cfg)
    body = CURL_BODY.format(user="8009")
    assert client.post("/switch/freeswitch/directory", data=body).status_code == 401
    assert client.post("/switch/freeswitch/directory", data=body,
                       headers=basic("hotdesk", "wrong")).status_code == 401
    reply = client.post("/switch/freeswitch/directory", data=body,
                        headers=basic("hotdesk", DIRECTORY_PASSWORD))
    assert reply.status_code == 200 and reply.mimetype == "text/xml"
    text = reply.get_data(as_text=True)
    assert '<user id="8009">' in text and f'value="{spec.sip_password}"' in text
    assert '<variable name="user_context" value="hotdesk-idle"/>' in text
    assert "Desk 9" in text and "<9>" not in text
    assert reply.headers["Cache-Control"] == "no-store"
    other = client.post("/switch/freeswitch/directory", data=CURL_BODY.format(user="101"),
                        headers=basic("hotdesk", DIRECTORY_PASSWORD))
    assert 'result status="not found"' in other.get_data(as_text=True)
    # guessing the credentials is bounded per client address
    codes = [client.post("/switch/freeswitch/directory", data=body,
                         headers=basic("hotdesk", f"guess{n}")).status_code for n in range(25)]
    assert codes[:18] == [401] * 18 and codes[-1] == 429
    assert client.post("/switch/freeswitch/directory", data=body,
                       headers=basic("hotdesk", DIRECTORY_PASSWORD)).status_code == 429


def test_xml_curl_directory_is_off_without_a_password(runtime, config, tmp_path):
    app = create_app(Runtime(config=dataclasses.replace(config, web=dataclasses.replace(
        config.web, secret_key_file=str(tmp_path / "s"))), db=runtime.db,
        service=runtime.service))
    reply = app.test_client().post("/switch/freeswitch/directory",
                                   data=CURL_BODY.format(user="8001"),
                                   headers=basic("hotdesk", ""))
    assert reply.status_code == 404


def test_cli_device_add_on_freeswitch_needs_no_password(runtime, cfg, database_url):
    env = dict(os.environ, HOTDESK_DATABASE_URL=database_url, HOTDESK_SWITCH_TYPE="freeswitch",
               HOTDESK_ESL_PORT=str(cfg.esl.port),
               HOTDESK_SWITCH_DIRECTORY_PASSWORD=DIRECTORY_PASSWORD)
    env.pop("HOTDESK_CONFIG", None)
    out = subprocess.run([sys.executable, "-m", "hotdesk_cli", "device", "add", "--mac",
                          "00:15:65:00:00:0a", "--extension", "8010"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "served to FreeSWITCH (mod_xml_curl)" in out.stdout
    assert Device.get(Device.idle_extension == "8010").idle_managed
    env.pop("HOTDESK_SWITCH_DIRECTORY_PASSWORD")
    out = subprocess.run([sys.executable, "-m", "hotdesk_cli", "device", "add", "--mac",
                          "00:15:65:00:00:0b", "--extension", "8011"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "[switch] directory_password" in out.stderr


def test_doctor_on_freeswitch(runtime, cfg, view, fs):
    add_user(runtime.db, default_tenant(), "101", name="Alice", pin="1234", hotdesk=True)
    spec = idle_accounts.prepare(DeviceSpec(mac="00:15:65:00:00:0c", extension="8012",
                                            sip_password=""), cfg)
    add_device(runtime.db, default_tenant(), spec, config=cfg)
    fs.modules.add("mod_xml_curl")
    fs.directory_fallback = lambda who: ({"attr:id": "8012", "var:user_context": "hotdesk-idle",
                                          "param:password": spec.sip_password}
                                         if who == "8012@default" else None)
    for name in Config().prompts("freeswitch").values():
        folder, _, file = name.rpartition("/")
        fs.files.add(f"{fs.sound_prefix}/{folder}/8000/{file}")
    checks = doctor.run_checks(cfg, view, get=lambda url: 200)
    assert not doctor.failed(checks), doctor.as_text(checks)
    assert any(c.name == "dialplan hotdesk-idle *70101" and c.ok for c in checks)
    assert any(c.name == "emergency 999 from hotdesk-idle" and c.ok for c in checks)
    fs.modules.discard("mod_xml_curl")
    fs.users["101@default"].pop("param:vm-password")
    fs.dialplan["default"] = []
    text = doctor.as_text(doctor.run_checks(cfg, view, get=lambda url: 200))
    assert "FAIL Event Socket privileges: not allowed: mod_xml_curl" in text
    fs.modules.add("mod_xml_curl")
    text = doctor.as_text(doctor.run_checks(cfg, view, get=lambda url: 200))
    assert "FAIL user 101 voicemail PIN" in text and 'name="vm-password"' in text
    assert "FAIL dialplan default *70101" in text
    assert "FAIL emergency 911 from default: 911 in default (user 101) matches nothing" in text


def test_directory_fake_answers_user_data_exactly_as_captured():
    """Every ``api user_data`` of the real capture, replayed against the fake holding the
    lab's directory: byte-identical replies (values without newline, ``-ERR no reply``)."""
    import socket

    from tests.fakes.freeswitch import CAPTURES, split_messages

    c2s = (CAPTURES / "esl-directory-reads.c2s.bin").read_bytes()
    s2c = split_messages((CAPTURES / "esl-directory-reads.s2c.bin").read_bytes())
    commands = [block.decode() for block in c2s.split(b"\n\n") if block]
    replies = s2c[1:]  # after auth/request
    fake = DirectoryServer()
    fake.add_user("101", "127.0.0.1", password="secret101", vm_password="1234")
    fake.users["101@127.0.0.1"]["var:effective_caller_id_name"] = "Alice"
    fake.add_user("104", "127.0.0.1", a1_hash="585a4dc47f69b8871e9f5af8462b2d71")
    fake.add_user("8001", "127.0.0.1", password="secret8001", context="hotdesk-idle")
    fake.start()
    checked = 0
    try:
        with socket.create_connection(fake.address, timeout=5) as sock:
            stream = sock.makefile("rb")

            def read_message() -> bytes:
                head = b""
                while not head.endswith(b"\n\n"):
                    head += stream.readline()
                size = 0
                for line in head.split(b"\n"):
                    if line.startswith(b"Content-Length: "):
                        size = int(line.split(b": ")[1])
                return head + stream.read(size)

            read_message()  # auth/request
            for command, (lines, body) in zip(commands, replies, strict=False):
                captured = b"\n".join(lines) + b"\n\n" + body
                if not (command.startswith("auth ") or (
                        command.startswith("api user_data ") and "@" in command.split()[2]
                        and len(command.split()) == 5)):
                    continue
                sock.sendall(command.encode() + b"\n\n")
                assert read_message() == captured, command
                checked += 1
    finally:
        fake.stop()
    assert checked == 11  # auth + 10 user_data look-ups with user@domain type name


def test_xml_curl_requests_as_captured_get_the_right_answers(runtime, cfg, tmp_path):
    """The nine HTTP requests a real FreeSWITCH sent through mod_xml_curl (REGISTER
    sip_auth and user_data look-ups for 8003, an unknown 8099 by id and number-alias, the
    static user 101), replayed byte for byte: 8003 is served, the others are not found."""
    from hotdesk.store.models import Tenant
    from tests.fakes.freeswitch import CAPTURES

    Tenant.update(sip_domain="127.0.0.1").where(Tenant.is_default == True).execute()  # noqa: E712
    lab = dataclasses.replace(cfg, switch=dataclasses.replace(
        cfg.switch, directory_username="hotdesk", directory_password="curlsecret"))
    add_device(runtime.db, default_tenant(), DeviceSpec(
        mac="00:15:65:00:80:03", extension="8003", sip_password="secret8003",
        idle_managed=True), config=lab)
    web = dataclasses.replace(lab.web, secret_key_file=str(tmp_path / "secret"))
    client = create_app(Runtime(config=dataclasses.replace(lab, web=web), db=runtime.db,
                                service=runtime.service)).test_client()
    served = []
    for k in range(1, 10):
        raw = (CAPTURES / f"xml-curl-directory.http{k}.s2c.bin").read_bytes()
        head, body = raw.split(b"\r\n\r\n", 1)
        request_line, *lines = head.decode().split("\r\n")
        method, path, _ = request_line.split(" ")
        headers = dict(line.split(": ", 1) for line in lines)
        assert len(body) == int(headers["Content-Length"])
        reply = client.open(path, method=method, data=body, headers={
            "Authorization": headers["Authorization"], "Content-Type": headers["Content-Type"]})
        assert reply.status_code == 200 and reply.mimetype == "text/xml"
        text = reply.get_data(as_text=True)
        if '<user id="8003">' in text:
            assert 'name="password" value="secret8003"' in text
            served.append(k)
        else:
            assert text == idle_accounts.NOT_FOUND
    assert served == [1, 2, 3, 4]
