"""Fuzzed bytes over real loopback sockets to every server that faces the network: the
FastAGI server, the outbound Event Socket server, the PnP UDP listener and the provisioning
HTTP endpoint under waitress. Inputs are mutations of real traffic (the seed corpus cut from
the switch captures) or plain random bytes. Each server must end every fuzzed session by
itself, never answer 500, and serve a correct request afterwards.

Example counts are small (the long run is ``bench/fuzz.py``); every socket wait is bounded.
"""

from __future__ import annotations

import base64
import socket
import threading
import time
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.fuzz import mutations
from hotdesk.admin.inventory import add_user, default_tenant
from hotdesk.store.models import DiscoveredPhone
from hotdesk_pnp.sip import parse_message
from tests.pnp_helpers import running_listener, unicast_config

CORPUS = Path(__file__).resolve().parent / "fuzz_corpus"
WAIT = 15.0  # seconds a server may take to end a fuzzed session (a hang guard, not a timing)


def payloads(*seeds: bytes, max_size: int = 3000) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=max_size), st.sampled_from(seeds).flatmap(mutations))


def fuzz_settings(n: int) -> settings:
    return settings(max_examples=n, deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))


def exchange(address: tuple[str, int], payload: bytes, greet: int = 0) -> bytes:
    """Connect, (read ``greet`` bytes), send, half-close, read to EOF. Asserts the server
    closes the session by itself within WAIT seconds."""
    with socket.create_connection(address, timeout=WAIT) as s:
        got = s.recv(greet) if greet else b""
        try:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
        except OSError:  # the server may already have dropped a garbage session
            return got
        chunks = [got]
        try:
            while data := s.recv(65536):
                chunks.append(data)
        except ConnectionResetError:
            pass
        except TimeoutError:
            pytest.fail(f"server kept a fuzzed session open for {WAIT} s: {payload[:80]!r}")
        return b"".join(chunks)


@pytest.fixture
def carol(runtime):
    """A user no fuzzed input names, for the correct call at the end."""
    return add_user(runtime.db, default_tenant(), "555", name="Carol", pin="9876",
                    hotdesk=True)


def test_fastagi_server_survives_fuzzed_sessions(runtime, tmp_path, alice, desk, carol):
    from tests.drivers.asterisk import make_driver

    env = (CORPUS / "agi_env" / "login-ok").read_bytes()
    replies = (CORPUS / "agi_reply" / "login-ok").read_bytes()
    with make_driver(runtime, tmp_path) as driver:
        address = driver.app.address

        @fuzz_settings(30)
        @given(payloads(env + replies, env, b"agi_network: yes\n\n"))
        def fuzz(payload: bytes) -> None:
            exchange(address, payload)

        fuzz()
        driver.asterisk.voicemail["555@default"] = "9876"  # Carol's voicemail PIN
        rec = driver.call("login", "8001", "555", ["9876"], source="127.0.0.1:5071")
        assert rec.result == "ok"


def test_outbound_esl_server_survives_fuzzed_sessions(runtime, tmp_path, alice, desk, carol):
    from tests.drivers.freeswitch import make_driver

    connect = (CORPUS / "esl_frames" / "connect-reply").read_bytes()[1:]
    replies = (CORPUS / "esl_frames" / "command-replies").read_bytes()[1:]
    with make_driver(runtime, tmp_path) as driver:
        server = driver.service.server

        @fuzz_settings(30)
        @given(payloads(connect + replies, connect, replies))
        def fuzz(payload: bytes) -> None:
            greeting = exchange(server.address, payload, greet=9)
            assert greeting.startswith(b"connect\n\n")

        fuzz()
        driver.voicemail = {"555@127.0.0.1": "9876"}  # Carol's vm-password
        assert driver.call("login", "8001", "555", ["9876"]).result == "ok"
        # a handler releases its slot just after it closes the socket: wait (bounded)
        deadline = time.monotonic() + WAIT
        while server.active_calls() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.active_calls() == 0, "a fuzzed session is still being handled"


def test_pnp_listener_survives_fuzzed_datagrams(runtime):
    seed = (CORPUS / "pnp_sip" / "pnp-subscribe").read_bytes()
    config = unicast_config(runtime.config, rate_limit=100_000)
    with running_listener(config, runtime.db) as listener, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as phone:
        phone.bind(("127.0.0.1", 0))
        phone.settimeout(5)
        target = listener.unicast.local()

        @fuzz_settings(80)
        @given(payloads(seed, max_size=5000))
        def fuzz(payload: bytes) -> None:
            phone.sendto(payload, target)

        fuzz()
        port = phone.getsockname()[1]
        good = seed.replace(b"127.0.0.1:5070", b"127.0.0.1:%d" % port).replace(
            b"1-1@127.0.0.1", b"after-fuzz@test").replace(b"0015651234ab", b"00156500fa11")
        phone.sendto(good, target)
        for _ in range(200):  # answers to fuzzed SUBSCRIBEs may come first
            answer = parse_message(phone.recvfrom(65536)[0])
            if answer.get("Call-ID") == "after-fuzz@test":
                break
        else:
            pytest.fail("no answer to the correct SUBSCRIBE")
        assert answer.status == 200
        assert listener.stats.malformed > 0
    assert DiscoveredPhone.get_or_none(DiscoveredPhone.mac == "00156500fa11") is not None


def test_provisioning_http_survives_fuzzed_requests(runtime, desk):
    import dataclasses

    import waitress

    from hotdesk.runtime import Runtime
    from webadmin.app import create_app

    cfg = dataclasses.replace(runtime.config, provisioning=dataclasses.replace(
        runtime.config.provisioning, auth="basic"))
    app = create_app(Runtime(config=cfg, db=runtime.db, service=runtime.service))
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=2,
                                    channel_timeout=10)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    address = ("127.0.0.1", server.socket.getsockname()[1])
    path = f"/prov/{desk.prov_token}/{desk.mac}.cfg"
    auth = base64.b64encode(f"{desk.mac}:{desk.prov_token}".encode()).decode()
    good = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Yealink SIP-T54W\r\n"
            f"Authorization: Basic {auth}\r\nConnection: close\r\n\r\n").encode()
    digest = good.replace(f"Basic {auth}".encode(),
                          b'Digest username="x", realm="hotdesk provisioning", nonce="1.\xe9"')
    try:
        @fuzz_settings(40)
        @given(payloads(good, digest, good.replace(b"Basic ", b"Basic \xc3\xa9")))
        def fuzz(payload: bytes) -> None:
            answer = exchange(address, payload)
            status = answer.split(b"\r\n", 1)[0]
            assert b" 500 " not in status, (payload[:200], answer[:200])

        fuzz()
        r = requests.get(f"http://{address[0]}:{address[1]}{path}", timeout=10,
                         auth=(desk.mac, desk.prov_token))
        assert r.status_code == 200 and "idle-8001" in r.text
    finally:
        server.close()
        thread.join(timeout=10)
