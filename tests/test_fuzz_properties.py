"""Property tests for the parsers that read outside input and had none: FastAGI, Event
Socket framing, MAC spellings, device form input, provisioning HTTP auth, the INI file.

Each property is one the code promises: only the documented error type, formatter and
parser agree (round-trips), oversized input is refused, no secret is echoed in an error.
Example counts are small so the whole file stays a few seconds; ``bench/fuzz.py`` is the
long run.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import types

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bench.fuzz_targets import asterisk_split
from esl_handlers import wire
from hotdesk.admin.inventory import DeviceSpec, InventoryError, normalise_device_spec
from hotdesk.mac import InvalidMac, format_mac, normalise_mac
from hotdesk.provisioning import serving as prov
from hotdesk.settings import Config, ConfigError, example_ini, load_config, parse_hhmm, parse_listen
from hotdesk_agi import protocol as agi

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Text without line breaks: what a single protocol line or header value can hold.
LINE_TEXT = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)),
                    max_size=60)


def _feed(data: bytes, limit: int) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=limit)
    reader.feed_data(data)
    reader.feed_eof()
    return reader


def _read_env(data: bytes) -> dict[str, str]:
    async def go() -> dict[str, str]:
        return await agi.read_env(agi.LineReader(_feed(data, agi.MAX_LINE)), 5.0)
    return asyncio.run(go())


# -- FastAGI ----------------------------------------------------------------------------------

ENV_KEYS = st.from_regex(r"\Aagi_[a-z0-9_]{1,20}\Z")


@FAST
@given(st.dictionaries(ENV_KEYS, LINE_TEXT, min_size=1, max_size=20))
def test_agi_env_block_round_trips(env):
    block = "".join(f"{k}: {v}\n" for k, v in env.items()) + "\n"
    assert _read_env(block.encode()) == env


@FAST
@given(st.binary(max_size=400))
def test_agi_env_block_garbage_is_a_protocol_error(data):
    try:
        env = _read_env(data)
    except agi.AgiProtocolError:
        return
    assert env and all(k.startswith("agi_") for k in env)


def test_agi_oversized_line_and_endless_block_are_refused():
    with pytest.raises(agi.AgiProtocolError, match="longer than"):
        _read_env(b"agi_network: " + b"x" * (agi.MAX_LINE + 10) + b"\n\n")
    endless = b"".join(b"agi_arg_%d: 1\n" % n for n in range(agi.MAX_ENV_LINES + 5)) + b"\n"
    with pytest.raises(agi.AgiProtocolError, match="longer than"):
        _read_env(endless)


@FAST
@given(st.integers(100, 599), st.from_regex(r"\A-?[0-9]{0,6}\Z"),
       st.none() | st.text(st.characters(blacklist_characters="()\r\n",
                                         blacklist_categories=("Cs",)), max_size=30))
def test_agi_reply_line_round_trips(code, result, data):
    line = f"{code} result={result}" + (f" ({data})" if data is not None else "")
    reply = agi.parse_reply_line(line)
    assert (reply.code, reply.result, reply.data) == (code, result, data)


@FAST
@example("２００ result=1")  # fullwidth digits are not a reply code
@given(LINE_TEXT)
def test_agi_reply_code_is_three_ascii_digits(line):
    try:
        reply = agi.parse_reply_line(line)
    except agi.AgiProtocolError as exc:
        assert len(str(exc)) < 1000
        return
    assert line[:3].isascii() and line[:3].isdigit() and reply.code == int(line[:3])


@FAST
@given(st.text(max_size=80))
def test_agi_quote_is_undone_by_asterisk_argument_parsing(value):
    value = agi.clean(value)
    assert "\n" not in value and "\r" not in value
    assert asterisk_split(f"STREAM FILE {agi.quote(value)} \"\"") == ["STREAM", "FILE", value, ""]


# -- Event Socket framing -----------------------------------------------------------------------


class _Sock:
    def __init__(self, data: bytes, chunk: int) -> None:
        self.data, self.chunk = data, chunk

    def recv(self, size: int) -> bytes:
        out, self.data = self.data[:self.chunk], self.data[self.chunk:]
        return out


HEADER_NAMES = st.from_regex(r"\A[A-Za-z][A-Za-z0-9_-]{0,20}\Z").filter(
    lambda n: n != "Content-Length")


@FAST
@given(st.dictionaries(HEADER_NAMES, st.text(max_size=40), min_size=1, max_size=15),
       st.integers(1, 300))
def test_esl_event_round_trips_through_url_encoding(event, chunk):
    """What FreeSWITCH frames (url-encoded event headers in a body), Reader gives back."""
    body = "".join(f"{k}: {wire.url_encode(v)}\n" for k, v in event.items()).encode() + b"\n"
    data = (f"Content-Length: {len(body)}\nContent-Type: text/event-plain\n\n").encode() + body
    msg = wire.Reader(_Sock(data + data, chunk)).read()
    assert msg.body == body
    assert msg.event() == event


# Spellings parse_headers accepts, repeats, and longer names around the two the call
# path looks up one by one.
LOOKED_UP = ("Event-Name", "Application-UUID")
NEAR_NAMES = st.sampled_from(["Event-Name", "Application-UUID", "variable_Event-Name",
                              " Event-Name", "Event-Name ", "Event-NameX", "X Event-Name",
                              "Core-UUID", "%Application-UUID", "Application-UUID\r"])


@FAST
@given(st.lists(st.tuples(NEAR_NAMES, st.sampled_from([": ", ":", ": Event-Name: "]),
                          st.text(max_size=12)), max_size=8),
       st.binary(max_size=20))
def test_esl_one_header_lookup_equals_parsing_the_whole_event(lines, body_tail):
    """header_value / EventHeaders answer exactly what parse_headers of the event would."""
    block = "".join(f"{n}{sep}{wire.url_encode(v)}\n" for n, sep, v in lines).encode()
    body = block + b"\n" + body_tail
    whole = wire.parse_headers(body.split(b"\n\n", 1)[0])
    lazy = wire.EventHeaders(body)
    for name in (*LOOKED_UP, "Missing"):
        assert wire.header_value(body, name) == whole.get(name)
        assert lazy.get(name) == whole.get(name)
    assert dict(lazy) == whole


@FAST
@given(st.text(max_size=100))
def test_esl_url_encoding_round_trips_and_stays_on_one_line(value):
    encoded = wire.url_encode(value)
    assert wire.url_decode(encoded) == value
    assert "\n" not in encoded and " " not in encoded


@FAST
@given(st.binary(max_size=500), st.integers(1, 64))
def test_esl_reader_garbage_is_protocol_error_or_closed(data, chunk):
    reader = wire.Reader(_Sock(data, chunk))
    for _ in range(50):
        try:
            msg = reader.read()
        except (wire.ProtocolError, wire.ConnectionClosed):
            return
        assert msg.headers and len(msg.body) <= wire.MAX_BODY


def test_esl_oversized_input_is_refused_before_it_is_read():
    too_big = f"Content-Length: {wire.MAX_BODY + 1}\n\n".encode()
    with pytest.raises(wire.ProtocolError, match="out of range"):
        wire.Reader(_Sock(too_big, 100)).read()
    endless = b"X" * (wire.MAX_LINE + 2)
    with pytest.raises(wire.ProtocolError, match="too long"):
        wire.Reader(_Sock(endless, 65536)).read()
    many = b"".join(b"H%d: v\n" % n for n in range(wire.MAX_HEADER_LINES + 1))
    with pytest.raises(wire.ProtocolError, match="too many"):
        wire.Reader(_Sock(many, 65536)).read()


@FAST
@given(st.text(max_size=30), st.dictionaries(st.text(max_size=10), st.text(max_size=20),
                                             max_size=3))
def test_esl_command_refuses_line_breaks(name, headers):
    text = name + "".join(headers) + "".join(headers.values())
    if "\n" in text or "\r" in text:
        with pytest.raises(ValueError):
            wire.command(name, headers)
    else:
        assert wire.command(name, headers).endswith(b"\n\n")


# -- MAC addresses --------------------------------------------------------------------------------

MACS = st.from_regex(r"\A[0-9a-f][02468ace][0-9a-f]{10}\Z").filter(lambda m: m != "0" * 12)


@FAST
@given(MACS, st.sampled_from([":", "-", ".", ""]), st.booleans())
def test_mac_spellings_round_trip(mac, sep, upper):
    assert normalise_mac(format_mac(mac, sep, upper)) == mac
    assert normalise_mac(f"  {format_mac(mac, sep, upper)}\t") == mac


def test_mac_error_quotes_a_bounded_part_of_the_input():
    for value in ("01" + " " * 5000 + "0000000000", "x" * 5000):
        with pytest.raises(InvalidMac) as err:
            normalise_mac(value)
        assert len(str(err.value)) < 200


# -- Device form input -------------------------------------------------------------------------


def _spec(**kw: str) -> DeviceSpec:
    base = dict(mac="00:15:65:12:34:ab", extension="8001", sip_password="pw-Secret-9",
                vendor="yealink")
    base.update(kw)
    return DeviceSpec(**base)


@FAST
@example("phone\n")  # "$" matches before a final newline: that name went into configs
@example("phone\r")
@given(st.text(max_size=70))
def test_sip_username_accepted_only_when_clean(username):
    try:
        spec = normalise_device_spec(_spec(sip_username=username))
    except InventoryError as exc:
        assert "pw-Secret-9" not in str(exc)
        return
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.+-")
    assert set(spec.sip_username) <= allowed and 1 <= len(spec.sip_username) <= 64


@FAST
@given(st.text(max_size=20), st.text(max_size=20), st.sampled_from(["lan", "sbc", "x"]),
       st.text(max_size=30), st.text(min_size=1, max_size=30))
def test_device_spec_is_idempotent_and_never_echoes_the_password(mac, ext, network, sbc, pw):
    secret = "Zx9-" + pw
    try:
        spec = normalise_device_spec(_spec(mac=mac, extension=ext, network=network, sbc=sbc,
                                           sip_password=secret))
    except InventoryError as exc:
        if secret not in mac + ext + network + sbc:
            assert secret not in str(exc)
        return
    assert normalise_device_spec(spec) == spec


# -- Provisioning HTTP authentication -------------------------------------------------------------

DEVICE = types.SimpleNamespace(mac="0015651234ab", prov_token="tok-Abc123")
CRED = (DEVICE.mac, DEVICE.prov_token)
KEY = b"k" * 32


def _cfg(username: str = "mac") -> types.SimpleNamespace:
    return types.SimpleNamespace(provisioning=types.SimpleNamespace(auth_username=username))


@FAST
@given(st.sampled_from([":", "-", ".", ""]), st.booleans())
def test_basic_auth_accepts_any_mac_spelling(sep, upper):
    user = format_mac(DEVICE.mac, sep, upper)
    header = "Basic " + base64.b64encode(f"{user}:{DEVICE.prov_token}".encode()).decode()
    assert prov.check_basic(_cfg(), *CRED, header)
    wrong = "Basic " + base64.b64encode(f"{user}:tok-other".encode()).decode()
    assert not prov.check_basic(_cfg(), *CRED, wrong)


@FAST
@example("Basic é")  # non-ASCII header text: was a ValueError, a 500 for the phone
@example('Digest username="0015651234ab", realm="hotdesk provisioning", nonce="1.é", '
         'uri="/x", response="é"')
@example('Digest username="a", realm="hotdesk provisioning", nonce="²", uri="/x", response="0"')
@given(st.text(max_size=200))
def test_any_authorization_header_is_just_refused(header):
    for config in (_cfg(), _cfg("phones")):
        assert prov.check_basic(config, *CRED, header) is False
        assert prov.check_digest(config, *CRED, header, "GET", KEY, 1e9) is False


@FAST
@given(st.text(st.characters(blacklist_characters='"\\,', blacklist_categories=("Cs",)),
               min_size=1, max_size=20).filter(lambda u: u.strip() == u),
       st.from_regex(r"\A/prov/[a-z0-9/._-]{1,40}\Z"))
def test_digest_round_trip(user, uri):
    nonce = prov.make_nonce(KEY, 1e9)
    ha1 = hashlib.md5(f"{user}:{prov.REALM}:{DEVICE.prov_token}".encode()).hexdigest()  # noqa: S324
    ha2 = hashlib.md5(f"GET:{uri}".encode()).hexdigest()  # noqa: S324
    response = hashlib.md5(f"{ha1}:{nonce}:00000001:abc:auth:{ha2}".encode()).hexdigest()  # noqa: S324
    header = (f'Digest username="{user}", realm="{prov.REALM}", nonce="{nonce}", uri="{uri}", '
              f'qop=auth, nc=00000001, cnonce="abc", response="{response}"')
    assert prov.check_digest(_cfg(user), *CRED, header, "GET", KEY, 1e9 + 10)
    # a stale nonce is refused, however right the response
    assert not prov.check_digest(_cfg(user), *CRED, header, "GET", KEY,
                                 1e9 + prov.NONCE_SECONDS + 1)


@FAST
@given(st.text(max_size=60))
def test_allow_networks_parse_or_name_the_option(text):
    try:
        nets = prov.parse_networks(text)
    except ValueError as exc:
        assert "allow_networks" in str(exc)
    else:
        assert all(n.num_addresses >= 1 for n in nets)


# -- INI configuration ---------------------------------------------------------------------------


def test_example_ini_round_trips(tmp_path):
    path = tmp_path / "hotdesk.ini"
    path.write_text(example_ini())
    assert load_config(path, environ={}) == Config()


@FAST
@given(st.integers(1, 10_000), st.integers(1, 65535), st.integers(0, 23), st.integers(0, 59))
def test_ini_values_round_trip(pin_tries, port, hh, mm):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "h.ini"
        path.write_text(f"[policy]\npin_tries_per_call = {pin_tries}\n"
                        f"daily_logout_time = {hh:02d}:{mm:02d}\n"
                        f"[agi]\nlisten = 127.0.0.1:{port}\n")
        config = load_config(path, environ={})
    assert config.policy.pin_tries_per_call == pin_tries
    assert parse_hhmm(config.policy.daily_logout_time) == (hh, mm)
    assert parse_listen(config.agi.listen) == ("127.0.0.1", port)


@settings(max_examples=40, deadline=None)
@example(b"[database]\nurl = caf\xe9\n")  # latin-1 file: was a UnicodeDecodeError traceback
@given(st.binary(max_size=300))
def test_any_config_file_is_a_config_or_a_config_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("ini") / "h.ini"
    path.write_bytes(data)
    try:
        assert isinstance(load_config(path, environ={}), Config)
    except ConfigError as exc:
        assert str(path) in str(exc) or "[" in str(exc)


@FAST
@example("127.0.0.1:²")
@example("²:30")
@given(LINE_TEXT)
def test_listen_and_time_parsers_never_crash(text):
    try:
        host, port = parse_listen(text)
        assert 0 <= port
    except ConfigError:
        pass
    hhmm = parse_hhmm(text)
    assert hhmm is None or (0 <= hhmm[0] < 24 and 0 <= hhmm[1] < 60)


def test_env_override_garbage_names_the_option():
    with pytest.raises(ConfigError, match=r"\[agi\] header_timeout"):
        load_config(None, environ={"HOTDESK_AGI_HEADER_TIMEOUT": "soon"})
    cfg = dataclasses.replace(Config())
    assert cfg == load_config(None, environ={})
