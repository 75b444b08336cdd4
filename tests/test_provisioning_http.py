"""The provisioning server over real HTTP: token, basic/digest auth, allow-list,
bounded audit of refusals, and every successful fetch recorded."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections.abc import Iterator

import pytest
import requests
from requests.auth import HTTPBasicAuth, HTTPDigestAuth
from werkzeug.serving import make_server

from hotdesk.runtime import Runtime
from hotdesk.store.models import AuditEvent, ConfigFetch, Device
from tests.conftest import make_device
from webadmin.app import create_app
from webadmin.provisioning import new_address


@pytest.fixture
def serve(runtime) -> Iterator:
    """serve(**provisioning options) -> (base URL, app), on a free loopback port."""
    servers = []

    def start(**options):
        cfg = dataclasses.replace(runtime.config, provisioning=dataclasses.replace(
            runtime.config.provisioning, **options))
        app = create_app(Runtime(config=cfg, db=runtime.db, service=runtime.service))
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.server_port}/prov", app

    yield start
    for server, thread in servers:
        server.shutdown()
        thread.join(timeout=10)


def get(url: str, **kw) -> requests.Response:
    kw.setdefault("timeout", 10)
    kw.setdefault("headers", {"User-Agent": "Yealink SIP-T46U 108.86.0.45 00:15:65:12:34:ab"})
    return requests.get(url, **kw)


def audits(action: str) -> list[AuditEvent]:
    return list(AuditEvent.select().where(AuditEvent.action == action))


def test_token_fetch_is_recorded_and_updates_address(runtime, serve, desk):
    Device.update(last_address="127.0.0.1:5062").where(Device.id == desk.id).execute()
    base, _app = serve()
    r = get(f"{base}/{desk.prov_token}/{desk.mac}.cfg")
    assert r.status_code == 200
    assert r.text.startswith("#!version:1.0.0.1")
    assert "account.1.password = idle-8001" in r.text
    [row] = ConfigFetch.select().where(ConfigFetch.device == desk)
    assert (row.config_version, row.filename, row.address) == (1, f"{desk.mac}.cfg", "127.0.0.1")
    assert row.user_agent.startswith("Yealink SIP-T46U")
    fresh = Device.get_by_id(desk.id)
    assert fresh.fetched_version == 1 and fresh.last_fetch_at is not None
    assert fresh.last_address == "127.0.0.1:5062"  # same IP: the SIP port is kept
    # the common file is served but is no fetch of the device's config
    assert get(f"{base}/{desk.prov_token}/y000000000066.cfg").status_code == 200
    assert ConfigFetch.select().count() == 1
    # a file the vendor does not have
    assert get(f"{base}/{desk.prov_token}/cfg{desk.mac}.xml").status_code == 404


def test_new_address_rule():
    assert new_address("192.0.2.1:5060", "192.0.2.1") == "192.0.2.1:5060"
    assert new_address("192.0.2.1:5060", "192.0.2.9") == "192.0.2.9"
    assert new_address("", "192.0.2.9") == "192.0.2.9"
    assert new_address("[2001:db8::1]:5060", "2001:db8::1") == "[2001:db8::1]:5060"


def test_wrong_token_is_404_and_audited_once_per_source_per_minute(runtime, serve, desk):
    base, app = serve()
    r = get(f"{base}/not-the-token/{desk.mac}.cfg")
    assert r.status_code == 404 and "idle-8001" not in r.text
    [row] = audits("config_denied")
    assert row.actor == "http:127.0.0.1" and desk.mac in row.detail
    # a scanner: many more refusals in the same minute add no rows
    app.extensions["hotdesk_provisioning"].throttle.clock = lambda: 6_000_000.0
    for i in range(30):
        assert get(f"{base}/guess{i}/{desk.mac}.cfg").status_code == 404
    assert len(audits("config_denied")) == 2  # the first of the new minute only
    # the next minute's row reports how many were not written
    app.extensions["hotdesk_provisioning"].throttle.clock = lambda: 6_000_060.0
    assert get(f"{base}/again/{desk.mac}.cfg").status_code == 404
    last = AuditEvent.select().order_by(AuditEvent.id.desc()).first()
    assert '"suppressed": 29' in last.detail


def test_basic_auth(runtime, serve, desk):
    base, _app = serve(auth="basic")
    url = f"{base}/{desk.prov_token}/{desk.mac}.cfg"
    r = get(url)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic ")
    assert get(url, auth=HTTPBasicAuth("00:15:65:12:34:AB", "wrong")).status_code == 401
    assert get(url, auth=HTTPBasicAuth("001565999999", desk.prov_token)).status_code == 401
    r = get(url, auth=HTTPBasicAuth("00:15:65:12:34:AB", desk.prov_token))
    assert r.status_code == 200 and "idle-8001" in r.text
    assert {a.action for a in AuditEvent.select().where(AuditEvent.action.startswith("config_"))
            } == {"config_auth_missing"}  # the later refusals share that minute's row
    assert ConfigFetch.select().count() == 1


def test_basic_auth_with_fixed_username(runtime, serve, desk):
    base, _app = serve(auth="basic", auth_username="phones")
    url = f"{base}/{desk.prov_token}/{desk.mac}.cfg"
    assert get(url, auth=HTTPBasicAuth(desk.mac, desk.prov_token)).status_code == 401
    assert get(url, auth=HTTPBasicAuth("phones", desk.prov_token)).status_code == 200


def test_digest_auth(runtime, serve, desk):
    base, _app = serve(auth="digest")
    url = f"{base}/{desk.prov_token}/{desk.mac}.cfg"
    r = get(url)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Digest ")
    assert get(url, auth=HTTPDigestAuth(desk.mac, "wrong")).status_code == 401
    r = get(url, auth=HTTPDigestAuth(desk.mac, desk.prov_token))
    assert r.status_code == 200 and "idle-8001" in r.text
    # a forged nonce is refused even with a correctly computed response
    ha1 = hashlib.md5(f"{desk.mac}:hotdesk provisioning:{desk.prov_token}".encode()).hexdigest()
    path = f"/prov/{desk.prov_token}/{desk.mac}.cfg"
    ha2 = hashlib.md5(f"GET:{path}".encode()).hexdigest()
    nonce = "1.deadbeef"
    resp = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
    header = (f'Digest username="{desk.mac}", realm="hotdesk provisioning", nonce="{nonce}", '
              f'uri="{path}", response="{resp}"')
    assert get(url, headers={"Authorization": header}).status_code == 401


def test_allow_list(runtime, serve, desk):
    base, _app = serve(allow_networks="192.0.2.0/24, 2001:db8::/32")
    r = get(f"{base}/{desk.prov_token}/{desk.mac}.cfg")
    assert r.status_code == 403 and "idle-8001" not in r.text
    assert len(audits("config_forbidden_network")) == 1
    assert ConfigFetch.select().count() == 0
    base, _app = serve(allow_networks="192.0.2.0/24 127.0.0.0/8")
    assert get(f"{base}/{desk.prov_token}/{desk.mac}.cfg").status_code == 200


def test_each_vendor_file_is_served(runtime, serve):
    base, _app = serve()
    for n, vendor in enumerate(["polycom", "cisco", "grandstream", "snom", "fanvil"]):
        device = make_device(runtime, mac=f"00:15:65:00:02:0{n}", extension=f"820{n}",
                             vendor=vendor)
        from hotdesk.provisioning.vendors import get_vendor
        for name in get_vendor(vendor).filenames(device.mac):
            r = get(f"{base}/{device.prov_token}/{name}")
            assert r.status_code == 200, (vendor, name)
            assert f"idle-820{n}" in r.text or name.endswith(f"{device.mac}.cfg")


def test_garbage_requests_do_not_break_the_server(runtime, serve, desk):
    base, _app = serve(auth="basic")
    url = f"{base}/{desk.prov_token}/{desk.mac}.cfg"
    for header in ("Basic !!!notbase64", "Basic " + "QQ==", "Digest nonsense", "Bearer x",
                   "Basic w6k6w6k="):
        assert get(url, headers={"Authorization": header}).status_code == 401
    assert get(f"{base}/{desk.prov_token}/../../etc/passwd").status_code == 404
    assert get(url, auth=HTTPBasicAuth(desk.mac, desk.prov_token)).status_code == 200
