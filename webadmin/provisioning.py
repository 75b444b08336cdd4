"""Serving phone configs. They carry SIP passwords, so the URL holds the device's long
random token: knowing a MAC is not enough to fetch anything. Optionally the phone must
also authenticate (HTTP basic or digest, password = the token) and come from an allowed
network. Refusals are audited, but at most once per source per minute so a scanner
cannot fill the database."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Blueprint, Flask, Response, abort, current_app, request

from hotdesk import audit
from hotdesk.config import Config
from hotdesk.mac import InvalidMac, normalise_mac
from hotdesk.models import ConfigFetch, Device, utcnow
from hotdesk.provisioning import ConfigCache, TemplateError, content_type
from hotdesk.runtime import Runtime
from hotdesk.vendors import get_vendor

log = logging.getLogger(__name__)

bp = Blueprint("provisioning", __name__, url_prefix="/prov")

REALM = "hotdesk provisioning"
NONCE_SECONDS = 300


class AuditThrottle:
    """One audit row per (source, minute), and at most ``global_per_minute`` rows a minute.

    What was not written is counted and reported in the next row that is written.
    """

    def __init__(self, global_per_minute: int = 60,
                 clock: Callable[[], float] = time.time) -> None:
        self.global_per_minute = global_per_minute
        self.clock = clock
        self._lock = threading.Lock()
        self._minute = -1
        self._seen: set[str] = set()
        self._written = 0
        self.suppressed = 0

    def admit(self, source: str) -> int | None:
        """None: do not write; else the number of refusals suppressed before this one."""
        minute = int(self.clock() // 60)
        with self._lock:
            if minute != self._minute:
                self._minute, self._seen, self._written = minute, set(), 0
            if source in self._seen or self._written >= self.global_per_minute:
                self.suppressed += 1
                return None
            self._seen.add(source)
            self._written += 1
            suppressed, self.suppressed = self.suppressed, 0
            return suppressed


@dataclass
class ServeState:
    cache: ConfigCache
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
    throttle: AuditThrottle = field(default_factory=AuditThrottle)
    nonce_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))


def parse_networks(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """``[provisioning] allow_networks``: CIDRs separated by commas or spaces."""
    nets = []
    for part in re.split(r"[\s,]+", text.strip()):
        if part:
            try:
                nets.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(f"[provisioning] allow_networks: {part!r} is not a network "
                                 "such as 192.0.2.0/24") from None
    return nets


def _state() -> ServeState:
    app: Flask = current_app  # type: ignore[assignment]
    state = app.extensions.get("hotdesk_provisioning")
    if state is None:
        config: Config = app.config["HOTDESK"].config
        state = ServeState(cache=ConfigCache(config),
                           networks=parse_networks(config.provisioning.allow_networks))
        app.extensions["hotdesk_provisioning"] = state
    return state


def _allowed(state: ServeState, address: str) -> bool:
    if not state.networks:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in state.networks)


def _refuse(state: ServeState, action: str, status: int, filename: str,
            headers: dict[str, str] | None = None) -> Response:
    source = request.remote_addr or ""
    suppressed = state.throttle.admit(source)
    if suppressed is not None:
        audit.record(action, actor=f"http:{source}", filename=filename[:100],
                     user_agent=request.user_agent.string[:200], suppressed=suppressed)
    log.info("config request for %r from %s refused: %s (%d)", filename[:100], source, action,
             status)
    return Response(f"{status}\n", status=status, headers=headers or {}, mimetype="text/plain")


def _username_ok(config: Config, device: Device, username: str) -> bool:
    if config.provisioning.auth_username != "mac":
        return hmac.compare_digest(username.encode(), config.provisioning.auth_username.encode())
    try:
        return normalise_mac(username) == device.mac
    except InvalidMac:
        return False


def check_basic(config: Config, device: Device, header: str) -> bool:
    if not header.lower().startswith("basic "):
        return False
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except ValueError:  # binascii.Error, non-ASCII header text, UnicodeDecodeError
        return False
    # rpartition: a MAC user name may contain colons, the token never does
    username, sep, password = decoded.rpartition(":")
    return (bool(sep) and _username_ok(config, device, username)
            and hmac.compare_digest(password.encode(), device.prov_token.encode()))


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()  # noqa: S324 - RFC 2617 digest


def make_nonce(key: bytes, now: float) -> str:
    stamp = str(int(now))
    return f"{stamp}.{hmac.new(key, stamp.encode(), hashlib.sha256).hexdigest()[:32]}"


def nonce_fresh(key: bytes, nonce: str, now: float) -> bool:
    stamp, _, _sig = nonce.partition(".")
    if not (stamp.isascii() and stamp.isdigit()):  # int() would also take "²" or "٣"
        return False
    return (hmac.compare_digest(make_nonce(key, int(stamp)).encode(), nonce.encode())
            and 0 <= now - int(stamp) <= NONCE_SECONDS)


_DIGEST_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^,\s]*))')


def check_digest(config: Config, device: Device, header: str, method: str, key: bytes,
                 now: float) -> bool:
    """RFC 2617 digest, MD5, qop=auth: what every provisioning-capable phone speaks."""
    if not header.lower().startswith("digest "):
        return False
    params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
              for m in _DIGEST_PARAM.finditer(header[7:])}
    needed = ("username", "realm", "nonce", "uri", "response")
    if not all(params.get(k) for k in needed) or params["realm"] != REALM:
        return False
    if not nonce_fresh(key, params["nonce"], now):
        return False
    if not _username_ok(config, device, params["username"]):
        return False
    ha1 = _md5(f"{params['username']}:{REALM}:{device.prov_token}")
    ha2 = _md5(f"{method}:{params['uri']}")
    if params.get("qop"):
        if params["qop"] != "auth" or not params.get("nc") or not params.get("cnonce"):
            return False
        expected = _md5(f"{ha1}:{params['nonce']}:{params['nc']}:{params['cnonce']}:auth:{ha2}")
    else:
        expected = _md5(f"{ha1}:{params['nonce']}:{ha2}")
    # bytes: compare_digest refuses non-ASCII str, and the header is the client's text
    return hmac.compare_digest(expected.encode(), params["response"].lower().encode())


def _challenge(config: Config, state: ServeState) -> dict[str, str]:
    if config.provisioning.auth == "digest":
        nonce = make_nonce(state.nonce_key, time.time())
        return {"WWW-Authenticate":
                f'Digest realm="{REALM}", qop="auth", algorithm=MD5, nonce="{nonce}"'}
    return {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'}


def new_address(previous: str, source_ip: str) -> str:
    """Keep the SIP ip:port when the fetch comes from the same IP; else the fetch's IP."""
    if previous and previous.rsplit(":", 1)[0].strip("[]") == source_ip:
        return previous
    return source_ip


@bp.get("/<token>/<path:filename>")
def fetch(token: str, filename: str) -> Response:
    runtime: Runtime = current_app.config["HOTDESK"]
    config = runtime.config
    state = _state()
    source = request.remote_addr or ""
    if not _allowed(state, source):
        return _refuse(state, "config_forbidden_network", 403, filename)
    device = Device.get_or_none(Device.prov_token == token)
    if device is None or not hmac.compare_digest(device.prov_token, token):
        return _refuse(state, "config_denied", 404, filename)
    mode = config.provisioning.auth
    if mode != "none":
        header = request.headers.get("Authorization", "")
        ok = (check_basic(config, device, header) if mode == "basic"
              else check_digest(config, device, header, request.method, state.nonce_key,
                                time.time()))
        if not ok:
            action = "config_auth_failed" if header else "config_auth_missing"
            return _refuse(state, action, 401, filename, _challenge(config, state))
    try:
        content = state.cache.get(device, filename)
    except TemplateError:
        # logged by the cache with file and line; the phone retries later
        return Response("503 config temporarily unavailable\n", status=503,
                        mimetype="text/plain")
    if content is None:
        abort(404)
    if filename in get_vendor(device.vendor).filenames(device.mac, device.model):
        _record_fetch(device, filename, source)
    return Response(content, mimetype=content_type(device, filename))


def _record_fetch(device: Device, filename: str, source: str) -> None:
    now = utcnow()
    agent = request.user_agent.string[:200]
    with device._meta.database.atomic():
        ConfigFetch.create(device=device, config_version=device.config_version,
                           filename=filename, at=now, address=source, user_agent=agent)
        Device.update(fetched_version=device.config_version, last_fetch_at=now,
                      last_user_agent=agent,
                      last_address=new_address(device.last_address, source)).where(
            Device.id == device.id).execute()
    log.info("phone %s fetched config v%d (%s from %s)", device.mac, device.config_version,
             filename, source)
