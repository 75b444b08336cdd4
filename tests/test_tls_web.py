"""``hotdesk web`` over real TLS and behind a (simulated) reverse proxy: TLS 1.2/1.3,
HSTS and the Secure cookie on admin pages, the plain-HTTP redirect listener, plain HTTP
on the TLS port, SIGHUP reload, and X-Forwarded-* believed only from trusted proxies."""

from __future__ import annotations

import http.client
import shutil
import signal
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

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


def web_env(database_url: str, tmp_path: Path, **options: str) -> dict[str, str]:
    env = {"HOTDESK_DATABASE_URL": database_url, "PYTHONPATH": str(REPO),
           "HOTDESK_WEB_SECRET_KEY_FILE": str(tmp_path / "web.secret")}
    env.update({f"HOTDESK_WEB_{k.upper()}": v for k, v in options.items()})
    return env


@pytest.fixture
def tls_web(runtime, database_url, pki, tmp_path) -> Iterator[tuple[int, int, object, Path]]:
    """hotdesk web on https with a redirect listener: (tls port, http port, proc, cert)."""
    cert, key = tmp_path / "live.pem", tmp_path / "live.key"
    shutil.copy(pki.cert, cert)
    shutil.copy(pki.key, key)
    port, plain = free_port(), free_port()
    env = web_env(database_url, tmp_path, listen=f"127.0.0.1:{port}", tls_certfile=str(cert),
                  tls_keyfile=str(key), redirect_listen=f"127.0.0.1:{plain}")
    with hotdesk_process(["web"], env, port, tmp_path / "web.log") as proc:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # the redirect listener starts just after
            try:
                socket.create_connection(("127.0.0.1", plain), 1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield port, plain, proc, tmp_path / "web.log"


def plain_get(port: int, path: str, headers: dict[str, str] | None = None,
              source: str = "127.0.0.1") -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10,
                                      source_address=(source, 0))
    conn.request("GET", path, headers=headers or {})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_admin_over_tls_hsts_and_secure_cookie(tls_web, pki, desk, version):
    port, _plain, _proc, _log = tls_web
    ctx = client_context(pki.ca, version)
    status, headers, body = https_get(port, "/signin", ctx)
    assert status == 200 and b"<form" in body
    assert headers["strict-transport-security"] == "max-age=31536000"
    cookie = headers["set-cookie"]
    assert cookie.startswith("hotdesk_session=") and "Secure" in cookie and "HttpOnly" in cookie
    # phones' files: served over TLS too, without HSTS (a phone is not a browser)
    status, headers, body = https_get(port, f"/prov/{desk.prov_token}/{desk.mac}.cfg", ctx)
    assert status == 200 and b"idle-8001" in body and "strict-transport-security" not in headers


def test_redirect_listener_and_plain_http_on_the_tls_port(tls_web, desk):
    port, plain, _proc, _log = tls_web
    resp = plain_get(plain, "/signin?next=/phones", {"Host": f"hotdesk.example:{plain}"})
    assert resp.status == 308
    assert resp.getheader("Location") == f"https://hotdesk.example:{port}/signin?next=/phones"
    assert resp.getheader("Strict-Transport-Security") is None  # only over https
    assert plain_get(plain, "/healthz").status == 200
    # phones still on an http:// base_url keep their files during a move to https
    assert plain_get(plain, f"/prov/{desk.prov_token}/{desk.mac}.cfg").status == 200
    with socket.create_connection(("127.0.0.1", port), 10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    assert not data.startswith(b"HTTP/")


def test_sighup_reloads_the_certificate_under_a_connected_client(tls_web, pki, tmp_path):
    port, _plain, proc, log = tls_web
    cert = tmp_path / "live.pem"
    before = served_serial(port, pki.ca)
    held = http.client.HTTPSConnection("127.0.0.1", port, context=client_context(pki.ca),
                                       timeout=10)
    held.request("GET", "/healthz")
    assert held.getresponse().read() == b'{"status":"ok"}\n'
    renewed = pki.server("renewed-web")
    shutil.copy(renewed[0], cert)
    shutil.copy(renewed[1], tmp_path / "live.key")
    proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "TLS certificate reloaded" not in log.read_text():
        time.sleep(0.1)
    held.request("GET", "/healthz")  # same connection, after the reload
    assert held.getresponse().status == 200
    held.close()
    assert served_serial(port, pki.ca) != before
    assert proc.poll() is None


def test_forwarded_headers_believed_only_from_trusted_proxies(runtime, database_url, desk,
                                                              tmp_path):
    port = free_port()
    env = web_env(database_url, tmp_path, listen=f"127.0.0.1:{port}",
                  trusted_proxies="127.0.0.2/32")
    env["HOTDESK_PROVISIONING_ALLOW_NETWORKS"] = "10.1.0.0/16"
    forwarded = {"X-Forwarded-For": "10.1.2.3", "X-Forwarded-Proto": "https"}
    prov = f"/prov/{desk.prov_token}/{desk.mac}.cfg"
    with hotdesk_process(["web"], env, port, tmp_path / "web.log"):
        # from the trusted proxy (127.0.0.2): the phone's address and the https scheme
        assert plain_get(port, prov, forwarded, source="127.0.0.2").status == 200
        resp = plain_get(port, "/signin", forwarded, source="127.0.0.2")
        assert "Secure" in resp.getheader("Set-Cookie")
        assert resp.getheader("Strict-Transport-Security") == "max-age=31536000"
        # the same headers from anyone else are ignored
        assert plain_get(port, prov, forwarded).status == 403
        resp = plain_get(port, "/signin", forwarded)
        assert "Secure" not in resp.getheader("Set-Cookie")
        assert resp.getheader("Strict-Transport-Security") is None
    from hotdesk.store.models import AuditEvent, Device

    assert Device.get_by_id(desk.id).last_address == "10.1.2.3"
    assert AuditEvent.get(AuditEvent.action == "config_forbidden_network").actor == \
        "http:127.0.0.1"


@pytest.mark.parametrize("command", [["web"], ["prov-serve", "--workers", "1", "--loop",
                                                "asyncio"]])
def test_sighup_without_tls_keeps_serving(runtime, database_url, desk, tmp_path, command):
    """systemctl reload sends SIGHUP: without TLS it must not stop the server."""
    port = free_port()
    env = web_env(database_url, tmp_path, listen=f"127.0.0.1:{port}")
    env["HOTDESK_PROVISIONING_LISTEN"] = f"127.0.0.1:{port}"
    log = tmp_path / "server.log"
    with hotdesk_process(command, env, port, log) as proc:
        deadline = time.monotonic() + 10
        # the port opens before the worker is up (SIGHUP is ignored until then): repeat
        while time.monotonic() < deadline and "nothing to reload" not in log.read_text():
            proc.send_signal(signal.SIGHUP)
            time.sleep(0.3)
        assert "no TLS configured, nothing to reload" in log.read_text()
        assert proc.poll() is None
        assert plain_get(port, f"/prov/{desk.prov_token}/{desk.mac}.cfg").status == 200
