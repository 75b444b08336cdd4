"""deploy/nginx/hotdesk.conf with a real nginx in front of real ``hotdesk web`` and
``hotdesk prov-serve`` processes: TLS terminated by nginx, the two upstreams, the HTTP to
HTTPS redirect, and the phone's own address reaching the allow-list, the audit and the
fetch records (clients connect from 127.0.0.2 and 127.0.0.3, nginx from 127.0.0.1)."""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotdesk.store.models import AuditEvent, Device
from tests.conftest import REPO
from tests.tls_helpers import client_context, free_port, hotdesk_process, make_pki, wait_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
pytestmark = pytest.mark.skipif(not (os.path.exists(NGINX) and shutil.which("openssl")),
                                reason="needs nginx and openssl")


def site_config(pki, http_port: int, https_port: int, web: int, prov: int) -> str:
    """The shipped example with this test's ports and certificate; every edit must apply."""
    text = (REPO / "deploy" / "nginx" / "hotdesk.conf").read_text()
    edits = {"listen 80;": f"listen 127.0.0.1:{http_port};",
             "listen [::]:80;": "",
             "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
             "listen [::]:443 ssl;": "",
             "server 127.0.0.1:8080;": f"server 127.0.0.1:{web};",
             "server 127.0.0.1:8081;": f"server 127.0.0.1:{prov};",
             "/etc/hotdesk/tls/fullchain.pem": str(pki.cert),
             "/etc/hotdesk/tls/privkey.pem": str(pki.key)}
    for old, new in edits.items():
        assert old in text, f"deploy/nginx/hotdesk.conf no longer has {old!r}"
        text = text.replace(old, new)
    return text


@pytest.fixture
def stack(runtime, database_url, tmp_path) -> Iterator[tuple[int, int, Path]]:
    """nginx -> hotdesk web + hotdesk prov-serve; yields (http port, https port, CA)."""
    pki = make_pki(tmp_path / "pki")
    http_port, https_port, web, prov = (free_port() for _ in range(4))
    (tmp_path / "site.conf").write_text(site_config(pki, http_port, https_port, web, prov))
    (tmp_path / "nginx.conf").write_text(f"""
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
daemon off;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/nginx-error.log;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    include {tmp_path}/site.conf;
}}
""")
    check = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    env = {"HOTDESK_DATABASE_URL": database_url, "PYTHONPATH": str(REPO),
           "HOTDESK_WEB_SECRET_KEY_FILE": str(tmp_path / "web.secret"),
           "HOTDESK_WEB_LISTEN": f"127.0.0.1:{web}", "HOTDESK_WEB_TRUSTED_PROXIES": "127.0.0.1/32",
           "HOTDESK_PROVISIONING_LISTEN": f"127.0.0.1:{prov}",
           "HOTDESK_PROVISIONING_TRUSTED_PROXIES": "127.0.0.1/32",
           "HOTDESK_PROVISIONING_ALLOW_NETWORKS": "127.0.0.2/32",
           "HOTDESK_PROVISIONING_BASE_URL": "https://hotdesk.example.com/prov"}
    log = open(tmp_path / "nginx.log", "wb")
    nginx = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                             stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(https_port, nginx, tmp_path / "nginx-error.log")
        with hotdesk_process(["web"], env, web, tmp_path / "web.log"), \
                hotdesk_process(["prov-serve", "--workers", "1", "--loop", "asyncio"], env, prov,
                                tmp_path / "prov.log"):
            yield http_port, https_port, pki.ca
    finally:
        nginx.terminate()
        nginx.wait(10)
        log.close()


def get(port: int, path: str, source: str, ca: Path | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn: http.client.HTTPConnection
    if ca is not None:
        conn = http.client.HTTPSConnection("localhost", port, timeout=10,
                                           context=client_context(ca),
                                           source_address=(source, 0))
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10,
                                          source_address=(source, 0))
    try:
        conn.request("GET", path, headers={"Host": "hotdesk.example.com", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_configs_through_nginx_see_the_phones_address(stack, desk):
    _http, https, ca = stack
    path = f"/prov/{desk.prov_token}/{desk.mac}.cfg"
    # a client-sent X-Forwarded-For is replaced by nginx, so it cannot claim an address
    status, _h, body = get(https, path, "127.0.0.2", ca, {"X-Forwarded-For": "127.0.0.3"})
    assert status == 200 and b"idle-8001" in body
    assert Device.get_by_id(desk.id).last_address == "127.0.0.2"
    status, _h, body = get(https, path, "127.0.0.3", ca, {"X-Forwarded-For": "127.0.0.2"})
    assert status == 403 and b"idle" not in body
    assert AuditEvent.get(AuditEvent.action == "config_forbidden_network").actor == \
        "http:127.0.0.3"


def test_admin_through_nginx_https_redirect_hsts_secure_cookie(stack):
    http_port, https, ca = stack
    status, headers, _body = get(http_port, "/signin", "127.0.0.2")
    assert status == 308 and headers["location"] == "https://hotdesk.example.com/signin"
    status, headers, body = get(https, "/signin", "127.0.0.2", ca)
    assert status == 200 and b"<form" in body
    assert headers["strict-transport-security"].startswith("max-age=")
    assert "Secure" in headers["set-cookie"]
    status, _headers, body = get(https, "/healthz", "127.0.0.2", ca)
    assert status == 200 and body == b'{"status":"ok"}\n'
