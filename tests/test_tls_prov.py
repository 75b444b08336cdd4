"""``hotdesk prov-serve`` over real TLS: a CA made by the test, Python and curl clients on
TLS 1.2 and 1.3, weak suites refused, plain HTTP on the TLS port refused cleanly, mutual
TLS with device certificates naming the file's MAC, X-Forwarded-For believed only from
a trusted proxy, and SIGHUP reloading the certificate under a connected client."""

from __future__ import annotations

import dataclasses
import http.client
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from hotdesk import tls
from hotdesk.provisioning.client_certs import certificate_macs, macs_in_text
from hotdesk.provisioning.serving import ConfigServer, client_address, parse_networks
from hotdesk.settings import ConfigError, load_config
from hotdesk.store.models import AuditEvent, ConfigFetch
from hotdesk_prov.server import ThreadedServer
from tests.conftest import REPO
from tests.tls_helpers import (
    Pki,
    client_context,
    free_port,
    hotdesk_process,
    https_get,
    make_pki,
    served_serial,
)

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def prov_tls(runtime, pki) -> Iterator:
    """prov_tls(**provisioning options) -> ThreadedServer serving TLS with the test CA."""
    servers: list[ThreadedServer] = []

    def start(**options) -> ThreadedServer:
        options.setdefault("tls_certfile", str(pki.cert))
        options.setdefault("tls_keyfile", str(pki.key))
        cfg = dataclasses.replace(runtime.config, provisioning=dataclasses.replace(
            runtime.config.provisioning, **options))
        files = tls.TlsFiles(cfg.provisioning.tls_certfile, cfg.provisioning.tls_keyfile,
                             cfg.provisioning.client_ca)
        server = ThreadedServer(ConfigServer(cfg, runtime.db),
                                ssl_context=tls.server_context(files)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def path_of(desk) -> str:
    return f"/prov/{desk.prov_token}/{desk.mac}.cfg"


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_python_client_tls12_and_tls13(prov_tls, pki, desk, version):
    srv = prov_tls()
    ctx = client_context(pki.ca, version)
    with socket.create_connection(("127.0.0.1", srv.port), 10) as raw_sock, \
            ctx.wrap_socket(raw_sock, server_hostname="localhost") as sock:
        assert sock.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2",
                                  ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
        cipher = sock.cipher()[0]
        assert "GCM" in cipher or "CHACHA20" in cipher, cipher
    status, _headers, body = https_get(srv.port, path_of(desk), ctx)
    assert status == 200 and b"idle-8001" in body


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
@pytest.mark.parametrize("flags, version", [(["--tlsv1.2", "--tls-max", "1.2"], "TLSv1.2"),
                                            (["--tlsv1.3"], "TLSv1.3")])
def test_curl_over_tls(prov_tls, pki, desk, flags, version):
    srv = prov_tls()
    out = subprocess.run(
        ["curl", "-sS", "-v", "--cacert", str(pki.ca), *flags,
         f"https://localhost:{srv.port}{path_of(desk)}"], capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr.decode()
    assert b"idle-8001" in out.stdout
    assert f"SSL connection using {version}".encode() in out.stderr


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TLS 1.0/1.1 client below
def test_weak_suites_and_old_versions_refused(prov_tls, pki, desk):
    srv = prov_tls()
    # CBC with SHA-1 MAC: a suite the certificate could use, refused by the server's list
    ctx = client_context(pki.ca, ssl.TLSVersion.TLSv1_2)
    ctx.set_ciphers("ECDHE-ECDSA-AES128-SHA")
    with pytest.raises(ssl.SSLError):
        https_get(srv.port, path_of(desk), ctx)
    # TLS 1.1 and below: the server's minimum is 1.2
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(str(pki.ca))
    old.set_ciphers("ALL:@SECLEVEL=0")
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((ssl.SSLError, ConnectionError)):
        https_get(srv.port, path_of(desk), old)
    assert https_get(srv.port, path_of(desk), client_context(pki.ca))[0] == 200


def test_plain_http_to_the_tls_port_is_refused_cleanly(prov_tls, pki, desk):
    srv = prov_tls()
    with socket.create_connection(("127.0.0.1", srv.port), 10) as sock:
        sock.sendall(f"GET {path_of(desk)} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    # no HTTP answer (and certainly no config) over plain text: the connection just ends
    assert not data.startswith(b"HTTP/") and b"idle-8001" not in data
    # a client that connects and says nothing is dropped at the handshake deadline,
    # and the server keeps serving meanwhile
    silent = socket.create_connection(("127.0.0.1", srv.port), 10)
    assert https_get(srv.port, path_of(desk), client_context(pki.ca))[0] == 200
    silent.close()


def test_mutual_tls_device_certificate_must_name_the_files_mac(prov_tls, pki, desk, desk2,
                                                               tmp_path):
    srv = prov_tls(client_ca=str(pki.ca))
    right_cn = pki.client("phone-cn", "/O=Yealink/CN=0015651234ab")
    right_san = pki.client("phone-san", "/CN=SEP phone",
                           "DNS:00-15-65-12-34-AB.phones.example")
    other = pki.client("phone-other", f"/CN={desk2.mac}")
    for cert in (right_cn, right_san):
        status, _h, body = https_get(srv.port, path_of(desk), client_context(pki.ca, cert=cert))
        assert status == 200 and b"idle-8001" in body
    # a genuine device certificate of another phone: refused and audited
    status, _h, body = https_get(srv.port, path_of(desk), client_context(pki.ca, cert=other))
    assert status == 403 and b"idle" not in body
    assert AuditEvent.select().where(
        AuditEvent.action == "config_client_cert_mismatch").count() == 1
    # that phone still gets its own file
    status, _h, body = https_get(srv.port, f"/prov/{desk2.prov_token}/{desk2.mac}.cfg",
                                 client_context(pki.ca, cert=other))
    assert status == 200 and b"idle-8002" in body
    # no certificate, or one from another CA: the handshake fails
    with pytest.raises((ssl.SSLError, ConnectionError)):
        https_get(srv.port, path_of(desk), client_context(pki.ca))
    stranger = make_pki(tmp_path / "stranger")
    foreign = stranger.client("foreign", "/CN=0015651234ab")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        https_get(srv.port, path_of(desk), client_context(pki.ca, cert=foreign))


def test_web_refuses_configs_when_client_certificates_are_required(runtime, desk):
    cfg = dataclasses.replace(runtime.config, provisioning=dataclasses.replace(
        runtime.config.provisioning, client_ca="ca.pem", tls_certfile="c.pem"))
    from hotdesk.provisioning.serving import FetchRequest

    reply = ConfigServer(cfg, runtime.db).handle(FetchRequest(
        token=desk.prov_token, filename=f"{desk.mac}.cfg", source="127.0.0.1"))
    assert reply.status == 403 and b"idle" not in reply.body


def test_forwarded_for_believed_only_from_a_trusted_proxy(prov_tls, pki, desk):
    ctx = client_context(pki.ca)
    spoof = {"X-Forwarded-For": "10.1.2.3"}
    srv = prov_tls(allow_networks="10.1.0.0/16")
    assert https_get(srv.port, path_of(desk), ctx, spoof)[0] == 403  # not trusted: peer
    srv = prov_tls(allow_networks="10.1.0.0/16", trusted_proxies="127.0.0.1/32")
    assert https_get(srv.port, path_of(desk), ctx, spoof)[0] == 200
    assert ConfigFetch.select().order_by(ConfigFetch.id.desc()).first().address == "10.1.2.3"
    # a client forging the left part gets its real address (the proxy's right-most entry)
    forged = {"X-Forwarded-For": "10.1.2.3, 192.0.2.9"}
    assert https_get(srv.port, path_of(desk), ctx, forged)[0] == 403
    last = AuditEvent.select().where(AuditEvent.action == "config_forbidden_network").order_by(
        AuditEvent.id.desc()).first()
    assert last.actor == "http:192.0.2.9"


def test_client_address_rules():
    trusted = parse_networks("127.0.0.1/32, 10.0.0.0/8", "[web] trusted_proxies")
    assert client_address("127.0.0.1", "198.51.100.7", trusted) == "198.51.100.7"
    assert client_address("192.0.2.1", "198.51.100.7", trusted) == "192.0.2.1"
    assert client_address("127.0.0.1", "6.6.6.6, 198.51.100.7, 10.0.0.5", trusted) \
        == "198.51.100.7"
    assert client_address("127.0.0.1", "garbage", trusted) == "127.0.0.1"
    assert client_address("127.0.0.1", "", trusted) == "127.0.0.1"
    assert client_address("127.0.0.1", "198.51.100.7", []) == "127.0.0.1"
    assert client_address("127.0.0.1", "[2001:db8::1]", trusted) == "2001:db8::1"


def test_certificate_mac_spellings():
    assert macs_in_text("001565ABCDEF") == {"001565abcdef"}
    assert macs_in_text("SEP00:15:65:ab:cd:ef") == {"001565abcdef"}
    assert macs_in_text("00-15-65-AB-CD-EF.example") == {"001565abcdef"}
    assert macs_in_text("0015.65ab.cdef") == {"001565abcdef"}
    assert macs_in_text("00:15-65:ab:cd:ef") == set()  # mixed separators
    assert macs_in_text("001565abcdef00") == set()  # part of a longer hex run
    cert = {"subject": ((("organizationName", "Poly"),), (("commonName", "0004f2aabbcc"),)),
            "subjectAltName": (("DNS", "64-16-7f-00-11-22"), ("IP Address", "10.0.0.1"))}
    assert certificate_macs(cert) == {"0004f2aabbcc", "64167f001122"}
    assert certificate_macs(None) == frozenset()


def test_tls_settings_are_checked_at_start(tmp_path):
    def load(text: str):
        path = tmp_path / "h.ini"
        path.write_text(text)
        return load_config(path, environ={})

    with pytest.raises(ConfigError, match="client_ca needs tls_certfile"):
        load("[provisioning]\nclient_ca = ca.pem\n")
    with pytest.raises(ConfigError, match="tls_keyfile is set without tls_certfile"):
        load("[web]\ntls_keyfile = k.pem\n")
    with pytest.raises(ConfigError, match=r"\[web\] trusted_proxies: '10.0.0.0/33'"):
        load("[web]\ntrusted_proxies = 10.0.0.0/33\n")
    with pytest.raises(ConfigError, match="redirect_listen needs tls_certfile"):
        load("[web]\nredirect_listen = 127.0.0.1:8080\n")
    with pytest.raises(tls.TlsError, match="missing.pem"):
        tls.server_context(tls.TlsFiles(str(tmp_path / "missing.pem")))


def test_sighup_reloads_the_certificate_without_dropping_a_connected_client(
        runtime, desk, database_url, pki, tmp_path):
    cert, key = tmp_path / "live.pem", tmp_path / "live.key"
    shutil.copy(pki.cert, cert)
    shutil.copy(pki.key, key)
    port = free_port()
    env = {"HOTDESK_DATABASE_URL": database_url, "HOTDESK_PROVISIONING_TLS_CERTFILE": str(cert),
           "HOTDESK_PROVISIONING_TLS_KEYFILE": str(key), "PYTHONPATH": str(REPO)}
    log = tmp_path / "prov.log"
    with hotdesk_process(["prov-serve", "--listen", f"127.0.0.1:{port}", "--workers", "2",
                          "--loop", "asyncio"], env, port, log) as proc:
        ctx = client_context(pki.ca)
        deadline = time.monotonic() + 20  # both workers up (SIGHUP is ignored before)
        while time.monotonic() < deadline and log.read_text().count("preloaded") < 2:
            time.sleep(0.1)
        before = served_serial(port, pki.ca)
        held = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
        held.request("GET", path_of(desk))
        assert held.getresponse().read().count(b"idle-8001")
        renewed = pki.server("renewed")
        shutil.copy(renewed[0], cert)
        shutil.copy(renewed[1], key)
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and log.read_text().count("TLS certificate reloaded") < 2:
            time.sleep(0.1)
        assert log.read_text().count("TLS certificate reloaded") == 2  # both workers
        # the client connected before the reload keeps its connection and its session
        held.request("GET", path_of(desk))
        assert b"idle-8001" in held.getresponse().read()
        held.close()
        # new connections get the renewed certificate
        after = {served_serial(port, pki.ca) for _ in range(6)}
        assert len(after) == 1 and before not in after
        # a broken renewal is refused, logged, and the renewed certificate stays in use
        cert.write_text("not a certificate")
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "not reloaded" not in log.read_text():
            time.sleep(0.1)
        assert "TLS files not reloaded, the previous ones stay in use" in log.read_text()
        assert served_serial(port, pki.ca) in after
        assert proc.poll() is None


def test_the_https_url_handed_out_is_the_one_served(runtime, pki, desk, database_url):
    """``hotdesk provision url`` (and PnP/RPS, which use the same ``device_url``) hand out
    an https base_url as configured; fetching exactly that URL works over TLS."""
    import os
    import urllib.request

    from hotdesk.provisioning.render import device_url

    port = free_port()
    base = f"https://localhost:{port}/prov"
    cfg = dataclasses.replace(runtime.config, provisioning=dataclasses.replace(
        runtime.config.provisioning, base_url=base))
    url = device_url(cfg, desk)
    assert url == f"{base}/{desk.prov_token}/"
    out = subprocess.run(
        [sys.executable, "-m", "hotdesk_cli", "provision", "url", desk.mac],
        env=dict(os.environ, HOTDESK_DATABASE_URL=database_url, PYTHONPATH=str(REPO),
                 HOTDESK_PROVISIONING_BASE_URL=base),
        capture_output=True, text=True, timeout=60)
    assert url in out.stdout, out.stdout + out.stderr
    files = tls.TlsFiles(str(pki.cert), str(pki.key))
    srv = ThreadedServer(ConfigServer(cfg, runtime.db), port=port,
                         ssl_context=tls.server_context(files)).start()
    try:
        with urllib.request.urlopen(f"{url}{desk.mac}.cfg", timeout=10,
                                    context=client_context(pki.ca)) as resp:
            assert resp.status == 200 and b"idle-8001" in resp.read()
    finally:
        srv.stop()
