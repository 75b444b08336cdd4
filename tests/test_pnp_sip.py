"""The PnP SIP parser: vendor MAC forms, Event parameters, and no crash on any input."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotdesk_pnp.sip import (
    SipParseError,
    build_response,
    extract_mac,
    parse_message,
    parse_via,
    response_address,
    split_params,
)

SUBSCRIBE = (
    b"SUBSCRIBE sip:MAC%3a0015651234ab@224.0.1.75 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.5:5060;branch=z9hG4bK1;rport\r\n"
    b"From: <sip:MAC%3a0015651234ab@224.0.1.75>;tag=1\r\n"
    b"To: <sip:MAC%3a0015651234ab@224.0.1.75>\r\n"
    b"Call-ID: abc@192.0.2.5\r\n"
    b"CSeq: 1 SUBSCRIBE\r\n"
    b'Event: ua-profile;profile-type="device";vendor="Yealink";model="T54W";'
    b'version="96.86.0.100"\r\n'
    b"Expires: 0\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def with_line(first: str, from_: str | None = None) -> bytes:
    text = SUBSCRIBE.decode().replace(
        "SUBSCRIBE sip:MAC%3a0015651234ab@224.0.1.75 SIP/2.0", first, 1)
    if from_ is not None:
        text = text.replace("From: <sip:MAC%3a0015651234ab@224.0.1.75>;tag=1", from_)
    return text.encode()


@pytest.mark.parametrize("first, from_", [
    # Yealink, Snom, Fanvil, Gigaset: MAC%3a in the request URI (Snom's pnpserv reads it there).
    ("SUBSCRIBE sip:MAC%3a0015651234ab@224.0.1.75 SIP/2.0", None),
    # Upper-case escape and upper-case hex (Polycom, Cisco MPP).
    ("SUBSCRIBE sip:MAC%3A0015651234AB@224.0.1.75 SIP/2.0", None),
    # MAC only in From (request URI is the group).
    ("SUBSCRIBE sip:224.0.1.75 SIP/2.0", "From: <sip:MAC%3a0015651234ab@192.0.2.5>;tag=1"),
    # Unescaped colon and separators.
    ("SUBSCRIBE sip:MAC:00-15-65-12-34-AB@224.0.1.75 SIP/2.0", "From: <sip:x@y>;tag=1"),
    # MAC= parameter form.
    ("SUBSCRIBE sip:pnp@224.0.1.75;MAC=00:15:65:12:34:ab SIP/2.0", "From: <sip:x@y>;tag=1"),
])
def test_vendor_mac_forms(first, from_):
    msg = parse_message(with_line(first, from_).replace(
        b"To: <sip:MAC%3a0015651234ab@224.0.1.75>", b"To: <sip:pnp@224.0.1.75>"))
    assert extract_mac(msg) == "0015651234ab"


def test_mac_from_event_parameter_and_none_at_all():
    text = with_line("SUBSCRIBE sip:224.0.1.75 SIP/2.0", "From: <sip:x@y>;tag=1").decode()
    text = text.replace("To: <sip:MAC%3a0015651234ab@224.0.1.75>", "To: <sip:pnp@224.0.1.75>")
    msg = parse_message(text.replace('version="96.86.0.100"',
                                     'version="1";mac="00:15:65:12:34:ab"').encode())
    assert extract_mac(msg) == "0015651234ab"
    assert extract_mac(parse_message(text.encode())) is None


def test_event_parameters_and_quoted_semicolons():
    package, params = split_params(
        'ua-profile;profile-type="device";vendor="Yealink";model="T54W";version="9;6"')
    assert package == "ua-profile"
    assert params == {"profile-type": "device", "vendor": "Yealink", "model": "T54W",
                      "version": "9;6"}


def test_compact_headers_and_response_echo():
    text = SUBSCRIBE.decode().replace("Event:", "o:").replace("Call-ID:", "i:")
    msg = parse_message(text.encode())
    assert msg.get("Event").startswith("ua-profile") and msg.get("Call-ID") == "abc@192.0.2.5"
    ok = parse_message(build_response(msg, 200, "OK", "t1", received="198.51.100.7:40000"))
    assert ok.status == 200
    assert ok.get("To") == "<sip:MAC%3a0015651234ab@224.0.1.75>;tag=t1"
    assert ok.get("Via") == ("SIP/2.0/UDP 192.0.2.5:5060;branch=z9hG4bK1;"
                             "received=198.51.100.7;rport=40000")
    assert ok.get("CSeq") == "1 SUBSCRIBE" and ok.get("Content-Length") == "0"


def test_response_address_rules():
    via = parse_via("SIP/2.0/UDP 192.0.2.5:5062;branch=z9hG4bK1")
    assert response_address(via, ("192.0.2.5", 40000)) == ("192.0.2.5", 5062)
    via = parse_via("SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK1")
    assert response_address(via, ("192.0.2.5", 40000)) == ("192.0.2.5", 5060)
    via = parse_via("SIP/2.0/UDP 10.0.0.5:5060;rport;branch=z9hG4bK1")
    assert response_address(via, ("192.0.2.5", 40000)) == ("192.0.2.5", 40000)


@pytest.mark.parametrize("data", [
    b"", b"\r\n\r\n", b"SUBSCRIBE\r\n\r\n", SUBSCRIBE.replace(b"CSeq: 1 SUBSCRIBE", b"CSeq: x"),
    SUBSCRIBE.replace(b"Content-Length: 0", b"Content-Length: 99"), SUBSCRIBE + b"x" * 5000,
    SUBSCRIBE.replace(b"Call-ID", b"Call ID"), b"\xff\xfe" + SUBSCRIBE,
])
def test_malformed_datagrams_raise_parse_error(data):
    with pytest.raises(SipParseError):
        parse_message(data)


def _mutate(data: bytes, ops: list[tuple[int, int, int]]) -> bytes:
    buf = bytearray(data)
    for kind, pos, value in ops:
        if not buf:
            buf.append(value)
            continue
        pos %= len(buf)
        if kind == 0:
            buf[pos] = value
        elif kind == 1:
            del buf[pos]
        elif kind == 2:
            buf.insert(pos, value)
        else:
            buf[pos:pos] = buf[pos:pos + value % 40]
    return bytes(buf)


def _check_total(data: bytes) -> None:
    """The parser's contract: a message, or SipParseError; nothing else, ever."""
    try:
        msg = parse_message(data)
    except SipParseError:
        return
    extract_mac(msg)
    split_params(msg.get("Event"))
    try:
        parse_via(msg.get("Via"))
    except SipParseError:
        pass
    if msg.is_request:
        build_response(msg, 200, "OK", "t", received="192.0.2.1:5060")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 10_000), st.integers(0, 255)),
                max_size=12))
def test_mutated_subscribes_never_crash_the_parser(ops):
    _check_total(_mutate(SUBSCRIBE, ops))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_crash_the_parser(data):
    _check_total(data)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("SUBSCRIBE sip:MAC%3a0015@;=\"<>:/\r\nVia:CSeq1 "
                                             "SIP/2.0 Event:ua-profile,\t")), max_size=400))
def test_sip_shaped_text_never_crashes_the_parser(text):
    _check_total(text.encode())
