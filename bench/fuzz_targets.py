"""Fuzz targets: one function per parser that reads outside input, ``target(data: bytes)``.

A target returns normally when the parser did its documented job: it parsed the input, or
refused it with its documented error type. Anything else is a finding: any other exception,
or a broken property (``AssertionError``): a round-trip that does not hold, an unbounded
result, a secret echoed in an error message. The same functions drive ``bench/fuzz.py``
(atheris, 100,000 cases each) and ``tests/test_fuzz_regressions.py`` (replays every saved
finding), so a fixed crash stays fixed.

Targets that take several inputs split ``data`` on ``SEP`` (0x1F, the ASCII unit
separator) so every input is plain bytes, whatever generated it.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import re
import tempfile
import types
from collections.abc import Callable
from pathlib import Path

SEP = b"\x1f"
Target = Callable[[bytes], None]

# -- shared helpers -----------------------------------------------------------------------


def fields(data: bytes, count: int) -> list[str]:
    """``count`` text fields from ``data`` (missing ones empty), UTF-8 with replacement."""
    parts = data.split(SEP)
    parts += [b""] * (count - len(parts))
    return [p.decode("utf-8", "replace") for p in parts[:count]]


_LOOP: asyncio.AbstractEventLoop | None = None


def _run(coro):  # type: ignore[no-untyped-def]
    """One event loop per process: a new loop per case would dominate the run time."""
    global _LOOP
    if _LOOP is None:
        _LOOP = asyncio.new_event_loop()
    return _LOOP.run_until_complete(coro)


def _stream(data: bytes, limit: int) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=limit)  # call inside the running loop
    reader.feed_data(data)
    reader.feed_eof()
    return reader


# -- FastAGI (hotdesk_agi.protocol) ---------------------------------------------------------


def agi_env(data: bytes) -> None:
    """The env block Asterisk sends first: AgiProtocolError or a clean ``agi_*`` dict."""
    from hotdesk_agi.protocol import (
        MAX_ENV_LINES,
        MAX_LINE,
        AgiProtocolError,
        LineReader,
        args_of,
        read_env,
        script_name,
    )

    async def go() -> dict[str, str] | None:
        try:
            return await read_env(LineReader(_stream(data, MAX_LINE)), 5.0)
        except AgiProtocolError:
            return None

    env = _run(go())
    if env is None:
        return
    assert env and len(env) <= MAX_ENV_LINES
    for key, value in env.items():
        assert key.startswith("agi_") and "\n" not in key + value
        assert len(key) + len(value) <= MAX_LINE
    name = script_name(env)
    assert "?" not in name
    args = args_of(env)
    assert all(env[f"agi_arg_{n}"] == a for n, a in enumerate(args, start=1))


def asterisk_split(line: str) -> list[str]:
    """How res_agi.c's parse_args splits a command line: blanks separate arguments,
    double quotes group, a backslash takes the next character literally."""
    args: list[str] = []
    current: list[str] | None = None
    quoted = escaped = False
    for ch in line:
        if escaped:
            current = (current or []) + [ch]
            escaped = False
        elif ch == "\\":
            escaped = True
            current = current or []
        elif ch == '"':
            quoted = not quoted
            current = current or []
        elif ch in " \t" and not quoted:
            if current is not None:
                args.append("".join(current))
                current = None
        else:
            current = (current or []) + [ch]
    if current is not None:
        args.append("".join(current))
    return args


def agi_reply(data: bytes) -> None:
    """Command replies (incl. async HANGUP and 520 blocks), and argument quoting."""
    from hotdesk_agi.protocol import (
        MAX_LINE,
        AgiProtocolError,
        LineReader,
        clean,
        parse_reply_line,
        quote,
    )

    async def go() -> None:
        reader = LineReader(_stream(data, MAX_LINE))
        for _ in range(64):
            try:
                reply = await reader.reply(5.0)
            except AgiProtocolError:
                return
            assert reply.lines[0][:3].isascii() and 0 <= reply.code <= 999
            assert reply.lines and all(len(line) <= MAX_LINE for line in reply.lines)

    _run(go())
    text = data.decode("utf-8", "replace")
    for line in text.split("\n")[:8]:
        try:
            parse_reply_line(line)
        except AgiProtocolError as exc:
            assert len(str(exc)) < 1000  # the line is quoted, but only its start
    value = clean(text)
    assert "\n" not in value and "\r" not in value
    assert asterisk_split(quote(value)) == [value]


# -- Event Socket (esl_handlers.wire) -------------------------------------------------------


class _FeedSocket:
    """Just enough of a socket for :class:`esl_handlers.wire.Reader`: the data in chunks."""

    def __init__(self, data: bytes, chunk: int) -> None:
        self.data, self.chunk = data, max(chunk, 1)

    def recv(self, size: int) -> bytes:
        out, self.data = self.data[:min(size, self.chunk)], self.data[min(size, self.chunk):]
        return out


def esl_frames(data: bytes) -> None:
    """Messages from FreeSWITCH: ProtocolError/ConnectionClosed or bounded messages."""
    from esl_handlers.wire import (
        MAX_BODY,
        MAX_HEADER_LINES,
        ConnectionClosed,
        ProtocolError,
        Reader,
        header_value,
        url_decode,
        url_encode,
    )

    chunk = data[0] * 37 + 1 if data else 1
    reader = Reader(_FeedSocket(data[1:], chunk))  # type: ignore[arg-type]
    for _ in range(64):
        try:
            msg = reader.read()
        except (ProtocolError, ConnectionClosed):
            break
        assert msg.headers and len(msg.headers) <= MAX_HEADER_LINES
        assert len(msg.body) <= MAX_BODY
        if "Content-Length" in msg.headers:
            assert len(msg.body) == int(msg.headers["Content-Length"])
        event = msg.event()
        assert isinstance(msg.reply_text, str)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in event.items())
        if msg.content_type == "text/event-plain":
            # What the call path looks up one header at a time is what parsing gives.
            lazy = msg.event_headers()
            for name in ("Event-Name", "Application-UUID", *list(event)[:3]):
                assert header_value(msg.body, name) == lazy.get(name) == event.get(name)
            assert dict(lazy) == event
    text = data.decode("utf-8", "replace")
    assert url_decode(url_encode(text)) == text
    assert "\n" not in url_encode(text)


# -- SIP PnP (hotdesk_pnp.sip) --------------------------------------------------------------


def pnp_sip(data: bytes) -> None:
    """A UDP datagram: SipParseError or a message whose every accessor works."""
    from hotdesk_pnp.sip import (
        MAX_DATAGRAM,
        SipParseError,
        build_response,
        contact_uri,
        extract_mac,
        parse_message,
        parse_via,
    )

    try:
        msg = parse_message(data)
    except SipParseError as exc:
        assert len(str(exc)) < 1000  # quotes at most 60 characters of the input
        return
    assert len(data) <= MAX_DATAGRAM
    number, method = msg.cseq()
    assert number >= 0 and method
    mac = extract_mac(msg)
    assert mac is None or re.fullmatch(r"[0-9a-f]{12}", mac)
    contact_uri(msg)
    try:
        via = parse_via(msg.get("Via"))
        assert via.port is None or 0 < via.port < 65536
    except SipParseError:
        pass
    if msg.is_request:
        response = build_response(msg, 200, "OK", "tag1", received="127.0.0.1:5060")
        assert parse_message(response).status == 200


# -- MAC addresses (hotdesk.mac) ------------------------------------------------------------


def mac(data: bytes) -> None:
    """Any spelling: InvalidMac with a short message, or a canonical MAC that round-trips."""
    from hotdesk.mac import InvalidMac, format_mac, normalise_mac

    text = data.decode("utf-8", "replace")
    try:
        canonical = normalise_mac(text)
    except InvalidMac as exc:
        assert len(str(exc)) < 1000, "error message echoes unbounded input"
        return
    assert re.fullmatch(r"[0-9a-f]{12}", canonical)
    for sep in (":", "-", ".", ""):
        for upper in (True, False):
            assert normalise_mac(format_mac(canonical, sep, upper)) == canonical
    assert normalise_mac(canonical) == canonical


# -- Form inputs (hotdesk.admin.inventory, hotdesk.hashing) ---------------------------------------

_SENTINEL = "Sentinel-Pw-7f3a"
_SAFE_FIELD = re.compile(r"[^\x00-\x1f\x7f]*")


def inventory(data: bytes) -> None:
    """A phone form / API body: InventoryError (never echoing the password) or a clean spec."""
    from hotdesk.admin.inventory import DeviceSpec, InventoryError, normalise_device_spec
    from hotdesk.hashing import InvalidPin, validate_pin

    (mac_, ext, password, vendor, model, name, method, network, sbc,
     username, pin) = fields(data, 11)
    spec = DeviceSpec(mac=mac_, extension=ext, sip_password=password, vendor=vendor,
                      model=model, name=name, method=method, network=network, sbc=sbc,
                      sip_username=username)
    try:
        clean = normalise_device_spec(spec)
    except InventoryError as exc:
        assert len(str(exc)) < 1000
        if password:  # same error path with a recognisable password: never in the message
            marked = dataclasses.replace(spec, sip_password=_SENTINEL)
            try:
                normalise_device_spec(marked)
            except InventoryError as again:
                assert _SENTINEL not in str(again), "SIP password echoed in an error"
    else:
        assert re.fullmatch(r"[0-9a-f]{12}", clean.mac)
        assert re.fullmatch(r"[0-9]{1,15}", clean.extension)
        for value in (clean.sip_username, clean.sbc, clean.vendor):
            assert _SAFE_FIELD.fullmatch(value), f"control character accepted: {value!r}"
        assert normalise_device_spec(clean) == clean
    try:
        good = validate_pin(pin)
    except InvalidPin as exc:
        try:
            validate_pin(_SENTINEL)
        except InvalidPin as again:
            assert str(exc) == str(again), "the PIN error depends on (echoes) the PIN"
    else:
        assert re.fullmatch(r"[0-9]{4,8}", good)


# -- Importers (hotdesk.admin.importers) ----------------------------------------------------------


def _check_import(result) -> None:  # type: ignore[no-untyped-def]
    for record in result.records:
        assert re.fullmatch(r"[0-9]{1,15}", record.extension)
        assert record.pin is None or re.fullmatch(r"[0-9]{4,8}", record.pin)
        assert len(record.name) <= 100
    for problem in result.problems:
        assert len(problem.message) < 300
        for record in result.records:
            if record.pin and len(record.pin) >= 6:
                assert f"'{record.pin}'" not in problem.message


def import_asterisk(data: bytes) -> None:
    """pjsip.conf + voicemail.conf: never raises, only valid records."""
    from hotdesk.admin.importers import parse_asterisk

    pjsip, voicemail = fields(data, 2)
    _check_import(parse_asterisk(pjsip, voicemail))


def import_freeswitch(data: bytes) -> None:
    """A FreeSWITCH directory: never raises, only valid records."""
    from hotdesk.admin.importers import parse_freeswitch

    _check_import(parse_freeswitch(data.decode("utf-8", "replace")))


def import_csv(data: bytes) -> None:
    """CSV rows: never raises, only valid records."""
    from hotdesk.admin.importers import parse_csv

    _check_import(parse_csv(data.decode("utf-8", "replace")))


# -- Provisioning HTTP auth (hotdesk.provisioning.serving) ----------------------------------------

_MAC, _TOKEN = "0015651234ab", "Zq3vY0w9eFuzzTokenAbC"
_KEY = b"k" * 32


def _prov_config(auth_username: str = "mac") -> types.SimpleNamespace:
    return types.SimpleNamespace(provisioning=types.SimpleNamespace(auth_username=auth_username))


def prov_auth(data: bytes) -> None:
    """Authorization headers, nonces and allow-lists: booleans/ValueError, never a crash."""
    from hotdesk.provisioning.serving import (
        REALM,
        check_basic,
        check_digest,
        make_nonce,
        new_address,
        nonce_fresh,
        parse_networks,
    )

    header, method, nonce, networks, address = fields(data, 5)
    config = _prov_config()
    assert check_basic(config, _MAC, _TOKEN, header) in (True, False)  # type: ignore[arg-type]
    assert check_basic(_prov_config(header[:20]), _MAC, _TOKEN, header) in (  # type: ignore[arg-type]
        True, False)
    assert check_digest(config, _MAC, _TOKEN, header, method, _KEY, 1e9) in (  # type: ignore[arg-type]
        True, False)
    assert nonce_fresh(_KEY, nonce, 1e9) in (True, False)
    try:
        nets = parse_networks(networks)
    except ValueError as exc:
        assert "allow_networks" in str(exc)
    else:
        assert all(n.num_addresses >= 1 for n in nets)
    new_address(address, nonce)
    # Round-trips: the right credentials in either scheme are accepted.
    # a fixed user name from the input ("mac" is the setting that means "the phone's MAC")
    user = header if header and ":" not in header and header != "mac" else "0015651234ab"
    fixed = _prov_config(user)
    good = base64.b64encode(f"{user}:{_TOKEN}".encode()).decode()
    assert check_basic(fixed, _MAC, _TOKEN, f"Basic {good}")  # type: ignore[arg-type]
    if '"' not in user and "\\" not in user:
        uri = "/prov/x/y.cfg"
        fresh = make_nonce(_KEY, 1e9)
        ha1 = hashlib.md5(f"{user}:{REALM}:{_TOKEN}".encode()).hexdigest()  # noqa: S324
        ha2 = hashlib.md5(f"GET:{uri}".encode()).hexdigest()  # noqa: S324
        resp = hashlib.md5(f"{ha1}:{fresh}:00000001:c1:auth:{ha2}".encode()).hexdigest()  # noqa: S324
        auth = (f'Digest username="{user}", realm="{REALM}", nonce="{fresh}", uri="{uri}", '
                f'qop=auth, nc=00000001, cnonce="c1", response="{resp}"')
        assert check_digest(fixed, _MAC, _TOKEN, auth, "GET", _KEY, 1e9)  # type: ignore[arg-type]


# -- Provisioning HTTP requests over WSGI (webadmin.provisioning via create_app) -------------

PROV_TOKEN = "fuzzTokenK4r9mW2qLx7Vb0Nc"
_PROV_APPS: dict[str, object] = {}


def _prov_apps() -> dict[str, object]:
    """One app per auth mode on a throw-away SQLite database with one known phone."""
    if _PROV_APPS:
        return _PROV_APPS
    from hotdesk.admin.inventory import DeviceSpec, add_device, default_tenant
    from hotdesk.runtime import Runtime, start
    from hotdesk.settings import Config, DatabaseConfig
    from hotdesk.store.models import Device
    from webadmin.app import create_app

    tmp = Path(tempfile.mkdtemp(prefix="hotdesk-fuzz-"))
    config = dataclasses.replace(Config(), database=DatabaseConfig(url=f"sqlite:///{tmp}/f.db"))
    config = dataclasses.replace(config, web=dataclasses.replace(
        config.web, secret_key="fuzz", secret_key_file=str(tmp / "secret")))
    runtime = start(config, migrate=True)
    device = add_device(runtime.db, default_tenant(), DeviceSpec(
        mac="00:15:65:12:34:ab", extension="8001", sip_password="idle-secret-8001"))
    Device.update(prov_token=PROV_TOKEN).where(Device.id == device.id).execute()
    for mode in ("none", "basic", "digest"):
        cfg = dataclasses.replace(config, provisioning=dataclasses.replace(
            config.provisioning, auth=mode))
        app = create_app(Runtime(config=cfg, db=runtime.db, service=runtime.service))
        app.logger.disabled = True
        _PROV_APPS[mode] = app
    return _PROV_APPS


def prov_http(data: bytes) -> None:
    """A raw request path + Authorization + User-Agent through the WSGI app: never a 500,
    never a SIP password unless the request carried the device token."""
    apps = _prov_apps()
    mode = ("none", "basic", "digest")[data[0] % 3] if data else "none"
    parts = data[1:].split(SEP)
    parts += [b""] * (3 - len(parts))
    path, authz, agent = (p.decode("latin-1") for p in parts[:3])
    environ = {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": "/prov/" + path,
        "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
        "HTTP_AUTHORIZATION": authz, "HTTP_USER_AGENT": agent,
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": _EmptyInput(),
        "wsgi.errors": _NullErrors(), "wsgi.multithread": False,
        "wsgi.multiprocess": False, "wsgi.run_once": False,
    }
    status: list[str] = []
    body = b"".join(apps[mode](environ, lambda s, h, exc=None: status.append(s)))  # type: ignore[operator]
    code = int(status[0].split(" ", 1)[0])
    assert code != 500, f"500 for {path[:80]!r}"
    if b"idle-secret-8001" in body:
        assert PROV_TOKEN in path, "SIP password served without the device token"


class _EmptyInput:
    def read(self, *_: object) -> bytes:
        return b""

    def readline(self, *_: object) -> bytes:
        return b""


class _NullErrors:
    def write(self, *_: object) -> None:
        pass

    def flush(self) -> None:
        pass


# -- INI configuration (hotdesk.settings) -----------------------------------------------------

_INI: Path | None = None


def config_ini(data: bytes) -> None:
    """The config file as bytes plus HOTDESK_* overrides: ConfigError or a Config."""
    from hotdesk.settings import Config, ConfigError, load_config, parse_hhmm, parse_listen

    global _INI
    if _INI is None:
        _INI = Path(tempfile.mkdtemp(prefix="hotdesk-fuzz-")) / "hotdesk.ini"
    parts = data.split(SEP)
    _INI.write_bytes(parts[0])
    env = {}
    for raw in parts[1:5]:
        key, _, value = raw.decode("utf-8", "replace").partition("=")
        if key and "\x00" not in key + value:
            env["HOTDESK_" + key.upper()] = value
    try:
        config = load_config(_INI, environ=env)
    except ConfigError as exc:
        assert len(str(exc)) < 2000
    else:
        assert isinstance(config, Config)
    for raw in parts[1:3]:
        text = raw.decode("utf-8", "replace")
        try:
            host, port = parse_listen(text)
            assert 0 <= port
        except ConfigError:
            pass
        hhmm = parse_hhmm(text)
        assert hhmm is None or (0 <= hhmm[0] < 24 and 0 <= hhmm[1] < 60)


TARGETS: dict[str, Target] = {
    "agi_env": agi_env,
    "agi_reply": agi_reply,
    "esl_frames": esl_frames,
    "pnp_sip": pnp_sip,
    "mac": mac,
    "inventory": inventory,
    "import_asterisk": import_asterisk,
    "import_freeswitch": import_freeswitch,
    "import_csv": import_csv,
    "prov_auth": prov_auth,
    "prov_http": prov_http,
    "config_ini": config_ini,
}

# What each target covers, for the report table and docs.
MODULES: dict[str, str] = {
    "agi_env": "hotdesk_agi/protocol.py read_env, script_name, args_of",
    "agi_reply": "hotdesk_agi/protocol.py LineReader.reply, parse_reply_line, quote, clean",
    "esl_frames": "esl_handlers/wire.py Reader, Message.event, parse_headers, url_encode",
    "pnp_sip": "hotdesk_pnp/sip.py parse_message, parse_via, extract_mac, build_response",
    "mac": "hotdesk/mac.py normalise_mac, format_mac",
    "inventory": "hotdesk/admin/inventory.py normalise_device_spec; "
                 "hotdesk/hashing.py validate_pin",
    "import_asterisk": "hotdesk/admin/importers.py parse_asterisk (pjsip.conf + voicemail.conf)",
    "import_freeswitch": "hotdesk/admin/importers.py parse_freeswitch (directory XML)",
    "import_csv": "hotdesk/admin/importers.py parse_csv",
    "prov_auth": "hotdesk/provisioning/serving.py check_basic, check_digest, nonce_fresh, "
                 "parse_networks",
    "prov_http": "webadmin/provisioning.py fetch (path, Authorization, User-Agent) over WSGI",
    "config_ini": "hotdesk/settings.py load_config, parse_listen, parse_hhmm",
}
