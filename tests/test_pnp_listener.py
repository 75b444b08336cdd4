"""The PnP listener over real UDP sockets, with SIPp playing the phone."""

from __future__ import annotations

import socket
import time

import pytest

from hotdesk.provisioning.render import device_url
from hotdesk.store.models import DiscoveredPhone
from hotdesk_pnp.listener import PnpBindError, open_multicast_socket
from hotdesk_pnp.sip import parse_message
from tests.conftest import make_device
from tests.pnp_helpers import (
    free_udp_port,
    run_sipp,
    running_listener,
    sipp_messages,
    unicast_config,
)

PHONE = {"mac": "0015651234ab", "vendor": "Yealink", "model": "T54W", "version": "96.86.0.100",
         "target": "224.0.1.75"}


def wait_until(predicate, seconds: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_known_phone_gets_its_url_in_a_notify(runtime, tmp_path):
    device = make_device(runtime, mac="00:15:65:12:34:ab")
    config = unicast_config(runtime.config)
    with running_listener(config, runtime.db) as listener:
        port = listener.unicast.local()[1]
        result = run_sipp("pnp_phone.xml", f"127.0.0.1:{port}", tmp_path, PHONE)
        assert result.returncode == 0, result.stdout[-2000:] + sipp_messages(tmp_path)
        assert wait_until(lambda: listener.stats.notifies_answered == 1)
    url = device_url(config, device)
    assert f"PROVISIONING-URL {url}" in (tmp_path / "actions.log").read_text()
    log = sipp_messages(tmp_path)
    notify_text = log[log.index("NOTIFY sip:"):]
    notify = parse_message(notify_text.split("\n\n----")[0].replace("\n", "\r\n").encode())
    assert notify.get("Content-Type") == "application/url"
    assert notify.get("Subscription-State") == "terminated;reason=timeout"
    assert notify.get("Event").startswith('ua-profile;profile-type="device";vendor="Yealink"')
    assert notify.get("To").startswith("<sip:MAC%3a0015651234ab@224.0.1.75>;tag=")
    assert notify.get("From").startswith("<sip:MAC%3a0015651234ab@224.0.1.75>;tag=")
    assert notify.get("CSeq") == "1 NOTIFY"
    assert notify.get("Content-Length") == str(len(url))
    assert notify.body.decode() == url
    ok = log[log.index("SIP/2.0 200 OK"):]
    assert "Expires: 0" in ok.split("\n\n")[0]
    row = DiscoveredPhone.get(DiscoveredPhone.mac == "0015651234ab")
    assert (row.vendor, row.model, row.firmware, row.adopted) == ("Yealink", "T54W",
                                                                   "96.86.0.100", True)


def test_unknown_phone_is_recorded_and_gets_no_url(runtime, tmp_path):
    config = unicast_config(runtime.config)
    phone = dict(PHONE, mac="805ec0aabbcc", vendor="Snom", model="D785", version="10.1.54.13")
    with running_listener(config, runtime.db) as listener:
        port = listener.unicast.local()[1]
        result = run_sipp("pnp_unknown_phone.xml", f"127.0.0.1:{port}", tmp_path, phone)
        assert result.returncode == 0, result.stdout[-2000:] + sipp_messages(tmp_path)
        assert listener.stats.notifies_sent == 0
        assert listener.stats.unknown == 1
    row = DiscoveredPhone.get(DiscoveredPhone.mac == "805ec0aabbcc")
    assert (row.vendor, row.model, row.firmware, row.adopted) == ("Snom", "D785", "10.1.54.13",
                                                                   False)
    assert row.address.startswith("127.0.0.1:")
    assert "NOTIFY" not in sipp_messages(tmp_path)


def subscribe(mac: str, port: int, call_id: str = "c1@test", cseq: int = 1) -> bytes:
    return (f"SUBSCRIBE sip:MAC%3a{mac}@224.0.1.75 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{call_id[:4]}{cseq};rport\r\n"
            f"From: <sip:MAC%3a{mac}@224.0.1.75>;tag=abc\r\n"
            f"To: <sip:MAC%3a{mac}@224.0.1.75>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: {cseq} SUBSCRIBE\r\n"
            'Event: ua-profile;profile-type="device";vendor="Fanvil";model="X4U";'
            'version="2.12"\r\nExpires: 0\r\nContent-Length: 0\r\n\r\n').encode()


def test_garbage_is_dropped_and_the_listener_keeps_answering(runtime, caplog):
    config = unicast_config(runtime.config, rate_limit=100)
    with running_listener(config, runtime.db) as listener, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as phone:
        phone.bind(("127.0.0.1", 0))
        phone.settimeout(5)
        target = listener.unicast.local()
        for junk in (b"", b"\x00\xff" * 100, b"GET / HTTP/1.1\r\n\r\n", b"X" * 9000,
                     b"SUBSCRIBE sip:x SIP/2.0\r\nVia: nonsense\r\n\r\n",
                     subscribe("001565", 1).replace(b"MAC%3a001565", b"nomac")):
            phone.sendto(junk, target)
        phone.sendto(subscribe("00156500ff01", phone.getsockname()[1]), target)
        answer = parse_message(phone.recvfrom(4096)[0])
        assert answer.status == 200
        assert answer.get("Call-ID") == "c1@test"
        assert listener.stats.malformed >= 4
    assert DiscoveredPhone.select().count() == 1
    # One line per source per window, however much garbage arrives.
    dropped = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 1


def test_rate_limit_per_source(runtime):
    config = unicast_config(runtime.config, rate_limit=3)
    with running_listener(config, runtime.db) as listener, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as phone:
        phone.bind(("127.0.0.1", 0))
        phone.settimeout(0.5)
        port = phone.getsockname()[1]
        for n in range(10):
            phone.sendto(subscribe("00156500ff02", port, call_id=f"call{n}"),
                         listener.unicast.local())
        answers = []
        while True:
            try:
                answers.append(parse_message(phone.recvfrom(4096)[0]))
            except TimeoutError:
                break
        assert len(answers) == 3
        assert wait_until(lambda: listener.stats.rate_limited == 7)


def test_notify_is_retransmitted_until_the_phone_answers(runtime):
    make_device(runtime, mac="00:15:65:00:ff:03")
    config = unicast_config(runtime.config, t1_ms=50, notify_timeout_seconds=5)
    with running_listener(config, runtime.db) as listener, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as phone:
        phone.bind(("127.0.0.1", 0))
        phone.settimeout(5)
        phone.sendto(subscribe("00156500ff03", phone.getsockname()[1]), listener.unicast.local())
        assert parse_message(phone.recvfrom(4096)[0]).status == 200
        notifies = [parse_message(phone.recvfrom(4096)[0]) for _ in range(3)]
        assert {n.method for n in notifies} == {"NOTIFY"}
        assert len({n.get("Via") for n in notifies}) == 1  # the same transaction
        first = notifies[0]
        ok = (f"SIP/2.0 200 OK\r\nVia: {first.get('Via')}\r\nFrom: {first.get('From')}\r\n"
              f"To: {first.get('To')}\r\nCall-ID: {first.get('Call-ID')}\r\n"
              f"CSeq: {first.get('CSeq')}\r\nContent-Length: 0\r\n\r\n").encode()
        phone.sendto(ok, listener.unicast.local())
        assert wait_until(lambda: listener.stats.notifies_answered == 1)
        sent = listener.stats.notifies_sent
        time.sleep(0.5)  # no more retransmissions once answered (count, not timing, asserted)
        assert listener.stats.notifies_sent == sent
        assert not listener.pending


def test_bind_conflict_names_the_switch_settings():
    port = free_udp_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as switch:
        switch.bind(("0.0.0.0", port))  # a switch on the wildcard address, no SO_REUSEADDR
        with pytest.raises(PnpBindError) as err:
            open_multicast_socket("224.0.1.75", port)
    message = str(err.value)
    assert "bind=192.0.2.10:" in message
    assert "sip-ip" in message and "rtp-ip" in message
