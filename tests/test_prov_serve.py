"""``hotdesk prov-serve`` over real sockets: the same checks as ``hotdesk web``'s
blueprint (one implementation), ETag/304, fetch recording only when something changed,
keep-alive and pipelining, and garbage that must not hurt the server."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from requests.auth import HTTPBasicAuth, HTTPDigestAuth
from werkzeug.serving import make_server

from hotdesk.provisioning.serving import ConfigServer, FetchRequest, etag_matches
from hotdesk.store.models import AuditEvent, ConfigFetch, Device
from hotdesk_prov.http import BadRequest, parse_head
from hotdesk_prov.server import Limits, ThreadedServer
from tests.conftest import REPO
from webadmin.app import create_app

UA = "Yealink SIP-T46U 108.86.0.45 00:15:65:12:34:ab"


@pytest.fixture
def lean(runtime) -> Iterator:
    """lean(limits=None, **provisioning options) -> (base URL, ConfigServer)."""
    servers: list[ThreadedServer] = []

    def start(limits: Limits | None = None, **options):
        cfg = dataclasses.replace(runtime.config, provisioning=dataclasses.replace(
            runtime.config.provisioning, **options))
        server = ThreadedServer(ConfigServer(cfg, runtime.db), limits=limits).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.port}/prov", server

    yield start
    for server in servers:
        server.stop()


def get(url: str, **kw) -> requests.Response:
    kw.setdefault("timeout", 10)
    kw.setdefault("headers", {"User-Agent": UA})
    return requests.get(url, **kw)


def raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data``, read until the server closes (or the timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def test_same_bytes_as_the_web_blueprint_and_etag_304(runtime, lean, desk):
    base, _srv = lean()
    app = create_app(runtime)
    web = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=web.serve_forever, daemon=True)
    thread.start()
    try:
        path = f"/prov/{desk.prov_token}/{desk.mac}.cfg"
        a = get(base.removesuffix("/prov") + path)
        b = get(f"http://127.0.0.1:{web.server_port}{path}")
    finally:
        web.shutdown()
        thread.join(10)
    assert a.status_code == b.status_code == 200
    assert a.content == b.content and b"account.1.password = idle-8001" in a.content
    assert a.headers["ETag"] == b.headers["ETag"] and a.headers["ETag"].startswith('"')
    assert a.headers["Content-Type"] == b.headers["Content-Type"]
    # the phone polls with the ETag it has: 304, no body
    r = get(base.removesuffix("/prov") + path,
            headers={"User-Agent": UA, "If-None-Match": a.headers["ETag"]})
    assert r.status_code == 304 and r.content == b""
    # after a re-provisioning the same ETag gets the new file
    Device.update(config_version=Device.config_version + 1, idle_sip_password="new-pw").where(
        Device.id == desk.id).execute()
    r = get(base.removesuffix("/prov") + path,
            headers={"User-Agent": UA, "If-None-Match": a.headers["ETag"]})
    assert r.status_code == 200 and b"new-pw" in r.content
    assert r.headers["ETag"] != a.headers["ETag"]


def test_fetch_recorded_only_when_something_changed(runtime, lean, desk):
    base, srv = lean()
    url = f"{base}/{desk.prov_token}/{desk.mac}.cfg"
    for _ in range(5):
        assert get(url).status_code == 200
    [row] = ConfigFetch.select()
    assert (row.config_version, row.address) == (1, "127.0.0.1")
    assert Device.get_by_id(desk.id).fetched_version == 1
    # a new config version is recorded at once
    Device.update(config_version=7).where(Device.id == desk.id).execute()
    assert get(url).status_code == 200
    assert [f.config_version for f in ConfigFetch.select().order_by(ConfigFetch.id)][-1] == 7
    assert Device.get_by_id(desk.id).fetched_version == 7
    count = ConfigFetch.select().count()
    # a new User-Agent (firmware upgrade) is recorded
    assert get(url, headers={"User-Agent": "Yealink SIP-T46U 108.87.0.1"}).status_code == 200
    assert ConfigFetch.select().count() == count + 1
    assert Device.get_by_id(desk.id).last_user_agent == "Yealink SIP-T46U 108.87.0.1"
    # an unchanged poll is recorded again once record_seconds have passed
    srv.app.server.record_seconds = 0
    assert get(url, headers={"User-Agent": "Yealink SIP-T46U 108.87.0.1"}).status_code == 200
    assert ConfigFetch.select().count() == count + 2


def test_a_failed_record_still_serves_and_is_retried(runtime, lean, desk, caplog):
    base, srv = lean()
    server = srv.app.server
    real = server._record_fetch
    calls = []

    def broken(*args):
        calls.append(args)
        raise RuntimeError("database is locked")

    server._record_fetch = broken
    url = f"{base}/{desk.prov_token}/{desk.mac}.cfg"
    r = get(url)
    assert r.status_code == 200 and b"idle-8001" in r.content
    assert "could not record" in caplog.text and ConfigFetch.select().count() == 0
    server._record_fetch = real
    assert get(url).status_code == 200
    assert len(calls) == 1 and ConfigFetch.select().count() == 1


def test_refusals_token_network_auth(runtime, lean, desk):
    base, _srv = lean(allow_networks="192.0.2.0/24")
    r = get(f"{base}/{desk.prov_token}/{desk.mac}.cfg")
    assert r.status_code == 403 and b"idle" not in r.content
    assert AuditEvent.select().where(AuditEvent.action == "config_forbidden_network").count() == 1
    base, _srv = lean()
    r = get(f"{base}/not-the-token/{desk.mac}.cfg")
    assert r.status_code == 404
    [row] = AuditEvent.select().where(AuditEvent.action == "config_denied")
    assert row.actor == "http:127.0.0.1"
    assert get(f"{base}/{desk.prov_token}/nothing.cfg").status_code == 404
    assert get(f"{base}/%00{desk.prov_token}/{desk.mac}.cfg").status_code == 404
    assert get(base.removesuffix("/prov") + "/elsewhere").status_code == 404
    base, _srv = lean(auth="basic")
    url = f"{base}/{desk.prov_token}/{desk.mac}.cfg"
    r = get(url)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic ")
    assert get(url, auth=HTTPBasicAuth(desk.mac, "wrong")).status_code == 401
    assert get(url, auth=HTTPBasicAuth(desk.mac, desk.prov_token)).status_code == 200
    base, _srv = lean(auth="digest")
    url = f"{base}/{desk.prov_token}/{desk.mac}.cfg"
    assert get(url).headers["WWW-Authenticate"].startswith("Digest ")
    assert get(url, auth=HTTPDigestAuth(desk.mac, "wrong")).status_code == 401
    r = get(url, auth=HTTPDigestAuth(desk.mac, desk.prov_token))
    assert r.status_code == 200 and b"idle-8001" in r.content


def test_keep_alive_pipelining_and_head(runtime, lean, desk):
    _base, srv = lean()
    path = f"/prov/{desk.prov_token}/{desk.mac}.cfg".encode()
    request = b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n"
    head = b"HEAD " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    out = raw(srv.port, request + head + last)
    responses = re.split(rb"(?=HTTP/1\.1 )", out)
    responses = [r for r in responses if r]
    assert len(responses) == 3
    assert all(r.startswith(b"HTTP/1.1 200 OK\r\n") for r in responses)
    length = int(re.search(rb"Content-Length: (\d+)", responses[0]).group(1))
    assert responses[0].endswith(b"\r\n\r\n" + responses[0].split(b"\r\n\r\n", 1)[1])
    assert len(responses[0].split(b"\r\n\r\n", 1)[1]) == length
    # HEAD: the length of the body, no body
    assert b"Content-Length: %d" % length in responses[1]
    assert responses[1].endswith(b"\r\n\r\n")
    assert b"Connection: close" in responses[2]
    # HTTP/1.0 without keep-alive is closed after one answer
    out = raw(srv.port, b"GET " + path + b" HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 OK") and out.count(b"HTTP/1.1 ") == 1


@pytest.mark.parametrize("data, status", [
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n", 400),
    (b"GET /prov/x/y HTTP/2.0\r\n\r\n", 505),
    (b"GET /prov/x/y HTTP/1.1\r\nno colon here\r\n\r\n", 400),
    (b"POST /prov/x/y HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
    (b"GET /prov/x/y HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 413),
    (b"GET /prov/x/y HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
    (b"GET /prov/x/y HTTP/1.1\r\nX: " + b"a" * 10000 + b"\r\n\r\n", 431),
    (b"GET /prov/x/y HTTP/1.1\r\nX: " + b"a" * 10000, 431),
])
def test_garbage_gets_an_error_and_the_server_stays_up(runtime, lean, desk, data, status):
    base, srv = lean()
    out = raw(srv.port, data)
    assert out.startswith(b"HTTP/1.1 %d " % status), out[:80]
    assert get(f"{base}/{desk.prov_token}/{desk.mac}.cfg").status_code == 200


def test_stalled_and_vanishing_clients(runtime, lean, desk):
    base, srv = lean(limits=Limits(idle_seconds=0.3, request_seconds=0.2, sweep_seconds=0.05))
    # half a request, then silence: 408 and closed
    out = raw(srv.port, b"GET /prov/x/y HTTP/1.1\r\nHost:", timeout=10)
    assert out.startswith(b"HTTP/1.1 408 ")
    # an idle keep-alive connection is closed without a word
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        assert sock.recv(10) == b""
    # a peer that disconnects in the middle of a request
    for _ in range(20):
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        sock.sendall(f"GET /prov/{desk.prov_token}/{desk.mac}.cfg HTTP/1.1\r\n".encode())
        sock.close()
    assert get(f"{base}/{desk.prov_token}/{desk.mac}.cfg").status_code == 200


def test_parse_head_units():
    req = parse_head(b"GET http://h:1/prov/a%2Db/f.cfg?mac=1 HTTP/1.1\r\nHost: h\r\n"
                     b"X-A: 1\r\nx-a: 2")
    assert req.path == "/prov/a-b/f.cfg" and req.headers["x-a"] == "1, 2"
    assert req.keep_alive
    assert not parse_head(b"GET / HTTP/1.0").keep_alive
    assert parse_head(b"GET / HTTP/1.0\r\nConnection: Keep-Alive").keep_alive
    with pytest.raises(BadRequest):
        parse_head(b"GET /  HTTP/1.1")
    with pytest.raises(BadRequest):
        parse_head(b"GET / HTTP/1.1\r\n folded: continuation")
    assert etag_matches('W/"abc", "def"', '"def"') and etag_matches("*", '"x"')
    assert not etag_matches('"abc"', '"abd"')


def test_cli_prefork_workers_serve_and_stop(runtime, desk, database_url, tmp_path):
    """Two worker processes on one socket; digest nonces from one are valid at the other."""
    env = dict(os.environ, HOTDESK_DATABASE_URL=database_url, HOTDESK_PROVISIONING_AUTH="digest",
               PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "hotdesk_cli", "prov-serve", "--listen", "127.0.0.1:0",
         "--workers", "2", "--loop", "asyncio"],
        env=env, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        port = None
        deadline = time.monotonic() + 30
        while port is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            found = re.search(r"listening on 127\.0\.0\.1:(\d+) \(2 workers", line)
            port = int(found.group(1)) if found else None
        assert port is not None, "prov-serve did not start"
        url = f"http://127.0.0.1:{port}/prov/{desk.prov_token}/{desk.mac}.cfg"
        for _ in range(12):  # new connections, spread over both workers by the kernel
            r = get(url, auth=HTTPDigestAuth(desk.mac, desk.prov_token),
                    headers={"User-Agent": UA, "Connection": "close"})
            assert r.status_code == 200 and b"idle-8001" in r.content
        assert ConfigFetch.select().count() >= 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_preload_renders_every_device_once(runtime, desk, desk2, monkeypatch):
    from hotdesk.provisioning import render

    server = ConfigServer(runtime.config, runtime.db)
    assert server.cache.preload() == 2  # one Yealink file per desk
    calls = []
    monkeypatch.setattr(render, "render_file",
                        lambda *a, **k: calls.append(a) or "rendered again")
    reply = server.decide(FetchRequest(desk.prov_token, f"{desk.mac}.cfg", "127.0.0.1"))
    assert reply.status == 200 and b"idle-8001" in reply.body and calls == []
    # a new config version is rendered on demand
    Device.update(config_version=2).where(Device.id == desk.id).execute()
    reply = server.decide(FetchRequest(desk.prov_token, f"{desk.mac}.cfg", "127.0.0.1"))
    assert reply.body == b"rendered again" and len(calls) == 1
