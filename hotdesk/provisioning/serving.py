"""Serving phone configs, independent of the HTTP server that carries the request.

Configs carry SIP passwords, so the URL holds the device's long random token: knowing a
MAC is not enough to fetch anything. Optionally the phone must also authenticate (HTTP
basic or digest, password = the token) and come from an allowed network. Refusals are
audited, but at most once per source per minute so a scanner cannot fill the database.

Both the Flask blueprint of ``hotdesk web`` and the lean ``hotdesk prov-serve`` server
call :meth:`ConfigServer.decide` and :meth:`ConfigServer.commit`, so the checks exist
once. Phones poll: the hot path is one indexed read of the device row by token and a
cached, pre-encoded file; a database write happens only when there is something new to
record (a new config version fetched, a new address or User-Agent, or the periodic
"still fetching" mark), and ``commit`` is separate so an event-loop server can run it
off its loop.
"""

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

from peewee import Database

from hotdesk.mac import InvalidMac, normalise_mac
from hotdesk.provisioning.render import ConfigCache, Rendered, TemplateError
from hotdesk.settings import Config, Network, parse_networks
from hotdesk.store import audit
from hotdesk.store.db import write_transaction
from hotdesk.store.models import ConfigFetch, Device, utcnow
from hotdesk.switch.accounts import AccountError

log = logging.getLogger(__name__)

REALM = "hotdesk provisioning"
NONCE_SECONDS = 300
TEXT = "text/plain; charset=utf-8"


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


def address_allowed(networks: list[Network], address: str) -> bool:
    """Empty allow-list: everyone. An IPv4-mapped IPv6 peer counts as its IPv4 address."""
    if not networks:
        return True
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in networks)


def client_address(peer: str, forwarded_for: str, trusted: list[Network]) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy.

    Only a peer inside ``trusted`` (``trusted_proxies``) is believed about
    ``X-Forwarded-For``; the list is read from the right (each proxy appends the address
    it saw) and the first address that is not itself a trusted proxy is the client. A
    forged left part sent by the client is never reached unless every hop is trusted.
    """
    if not trusted or not forwarded_for or not address_allowed(trusted, peer):
        return peer
    hops = [h.strip().strip("[]") for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop.split("%", 1)[0])
        except ValueError:
            return peer  # garbage in the header: trust nothing it says
        if not address_allowed(trusted, hop):
            return hop
    return hops[0] if hops else peer


def forwarded_https(peer: str, forwarded_proto: str, trusted: list[Network]) -> bool | None:
    """``X-Forwarded-Proto`` from a trusted proxy: True/False, or None when not believed."""
    if not trusted or not forwarded_proto or not address_allowed(trusted, peer):
        return None
    # A chain of proxies may send "https, http": the first is what the client used.
    return forwarded_proto.split(",", 1)[0].strip().lower() == "https"


def _username_ok(config: Config, mac: str, username: str) -> bool:
    if config.provisioning.auth_username != "mac":
        return hmac.compare_digest(username.encode(), config.provisioning.auth_username.encode())
    try:
        return normalise_mac(username) == mac
    except InvalidMac:
        return False


def check_basic(config: Config, mac: str, token: str, header: str) -> bool:
    if not header.lower().startswith("basic "):
        return False
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except ValueError:  # binascii.Error, non-ASCII header text, UnicodeDecodeError
        return False
    # rpartition: a MAC user name may contain colons, the token never does
    username, sep, password = decoded.rpartition(":")
    return (bool(sep) and _username_ok(config, mac, username)
            and hmac.compare_digest(password.encode(), token.encode()))


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


def check_digest(config: Config, mac: str, token: str, header: str, method: str, key: bytes,
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
    if not _username_ok(config, mac, params["username"]):
        return False
    ha1 = _md5(f"{params['username']}:{REALM}:{token}")
    ha2 = _md5(f"{method}:{params['uri']}")
    if params.get("qop"):
        if params["qop"] != "auth" or not params.get("nc") or not params.get("cnonce"):
            return False
        expected = _md5(f"{ha1}:{params['nonce']}:{params['nc']}:{params['cnonce']}:auth:{ha2}")
    else:
        expected = _md5(f"{ha1}:{params['nonce']}:{ha2}")
    # bytes: compare_digest refuses non-ASCII str, and the header is the client's text
    return hmac.compare_digest(expected.encode(), params["response"].lower().encode())


def new_address(previous: str, source_ip: str) -> str:
    """Keep the SIP ip:port when the fetch comes from the same IP; else the fetch's IP."""
    if previous and previous.rsplit(":", 1)[0].strip("[]") == source_ip:
        return previous
    return source_ip


def etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 weak comparison of an If-None-Match list against our strong ETag."""
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


@dataclass(frozen=True)
class FetchRequest:
    """What the servers extract from one HTTP request for a config file."""

    token: str
    filename: str
    source: str  # the peer's IP address
    method: str = "GET"
    uri: str = ""  # request target as sent, for digest authentication
    authorization: str = ""
    user_agent: str = ""
    if_none_match: str = ""
    # MACs named by the verified TLS client certificate; None = no client certificate.
    client_macs: frozenset[str] | None = None


@dataclass
class FetchReply:
    status: int
    body: bytes = b""
    content_type: str = TEXT
    headers: dict[str, str] = field(default_factory=dict)
    # A database write (fetch record or refusal audit) to run before the reply is sent.
    pending: Callable[[], None] | None = None


@dataclass(frozen=True)
class DeviceRow:
    """The columns of ``device`` the hot path needs, read in one indexed query."""

    id: int
    config_version: int
    fetched_version: int
    last_address: str
    last_user_agent: str
    prov_token: str
    mac: str


def _plain(status: int, text: str, headers: dict[str, str] | None = None) -> FetchReply:
    return FetchReply(status, f"{text}\n".encode(), TEXT, headers or {})


class ConfigServer:
    """The provisioning rules for one server process; thread-safe.

    ``record_seconds``: an unchanged fetch of the same file is recorded again at most
    this often per process (keeps ``last_fetch_at`` roughly current without a write
    per poll).
    """

    def __init__(self, config: Config, db: Database, cache: ConfigCache | None = None,
                 throttle: AuditThrottle | None = None, nonce_key: bytes | None = None,
                 record_seconds: float | None = None) -> None:
        self.config = config
        self.db = db
        self.cache = cache or ConfigCache(config)
        self.networks = parse_networks(config.provisioning.allow_networks)
        self.throttle = throttle or AuditThrottle()
        self.nonce_key = nonce_key or secrets.token_bytes(32)
        self.record_seconds = (config.provisioning.fetch_record_seconds
                               if record_seconds is None else record_seconds)
        self._recorded: dict[tuple[int, str], float] = {}
        self._lookup_sql = (
            "SELECT id, config_version, fetched_version, last_address, last_user_agent, "
            f"prov_token, mac FROM {Device._meta.table_name} WHERE prov_token = {db.param}")

    # -- the read-only decision -------------------------------------------------------

    def lookup(self, token: str) -> DeviceRow | None:
        # PostgreSQL refuses NUL in a string: such a token is simply unknown, not an outage.
        if not token or len(token) > 128 or "\x00" in token:
            return None
        row = self.db.execute_sql(self._lookup_sql, (token,)).fetchone()
        return DeviceRow(*row) if row else None

    def decide(self, req: FetchRequest) -> FetchReply:
        """The reply to ``req``; database reads only. Run ``commit`` before sending it."""
        if not address_allowed(self.networks, req.source):
            return self._refuse(req, "config_forbidden_network", 403)
        try:
            row = self.lookup(req.token)
        except Exception:  # noqa: BLE001 - a database outage must not kill the server
            log.exception("config request: device lookup failed")
            return _plain(503, "503 config temporarily unavailable")
        if row is None or not hmac.compare_digest(row.prov_token, req.token):
            return self._refuse(req, "config_denied", 404)
        if self.config.provisioning.client_ca and (
                req.client_macs is None or row.mac not in req.client_macs):
            # mutual TLS: the phone's device certificate must name this file's MAC
            return self._refuse(req, "config_client_cert_mismatch", 403)
        mode = self.config.provisioning.auth
        if mode != "none":
            header = req.authorization
            ok = (check_basic(self.config, row.mac, row.prov_token, header) if mode == "basic"
                  else check_digest(self.config, row.mac, row.prov_token, header, req.method,
                                    self.nonce_key, time.time()))
            if not ok:
                action = "config_auth_failed" if header else "config_auth_missing"
                return self._refuse(req, action, 401, self.challenge())
        try:
            rendered = self.cache.rendered(row.id, row.config_version, req.filename,
                                           lambda: Device.get_by_id(row.id))
        except (TemplateError, AccountError):
            # logged by the cache (template file and line, or the switch's account
            # error); the phone retries later
            return _plain(503, "503 config temporarily unavailable")
        except Exception:  # noqa: BLE001
            log.exception("config request for device %d failed", row.id)
            return _plain(503, "503 config temporarily unavailable")
        if rendered is None:
            return _plain(404, "404")
        headers = {"ETag": rendered.etag, "Cache-Control": "no-cache"}
        if req.if_none_match and etag_matches(req.if_none_match, rendered.etag):
            reply = FetchReply(304, b"", rendered.content_type, headers)
        else:
            reply = FetchReply(200, rendered.data, rendered.content_type, headers)
        if rendered.per_device and self._should_record(row, req):
            reply.pending = lambda: self._record_fetch(row, req, rendered)
        return reply

    def commit(self, reply: FetchReply) -> None:
        """Run the reply's database write. A failure is logged, the phone still gets its file."""
        if reply.pending is None:
            return
        try:
            reply.pending()
        except Exception:  # noqa: BLE001 - e.g. a locked database; the config still goes out
            log.exception("could not record a config request")
        reply.pending = None

    def handle(self, req: FetchRequest) -> FetchReply:
        """decide + commit, for threaded servers."""
        reply = self.decide(req)
        self.commit(reply)
        return reply

    def challenge(self) -> dict[str, str]:
        if self.config.provisioning.auth == "digest":
            nonce = make_nonce(self.nonce_key, time.time())
            return {"WWW-Authenticate":
                    f'Digest realm="{REALM}", qop="auth", algorithm=MD5, nonce="{nonce}"'}
        return {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'}

    # -- refusals and fetch records ---------------------------------------------------

    def _refuse(self, req: FetchRequest, action: str, status: int,
                headers: dict[str, str] | None = None) -> FetchReply:
        filename = req.filename[:100]
        log.info("config request for %r from %s refused: %s (%d)", filename, req.source,
                 action, status)
        reply = _plain(status, str(status), headers)
        suppressed = self.throttle.admit(req.source)
        if suppressed is not None:
            agent = req.user_agent[:200]
            reply.pending = lambda: audit.record(
                action, actor=f"http:{req.source}", filename=filename, user_agent=agent,
                suppressed=suppressed)
        return reply

    def _should_record(self, row: DeviceRow, req: FetchRequest) -> bool:
        changed = (row.fetched_version != row.config_version
                   or new_address(row.last_address, req.source) != row.last_address
                   or req.user_agent[:200] != row.last_user_agent)
        key = (row.id, req.filename)
        now = time.monotonic()
        last = self._recorded.get(key)
        if not changed and last is not None and now - last < self.record_seconds:
            return False
        if len(self._recorded) >= 200_000:
            self._recorded.clear()
        self._recorded[key] = now
        return True

    def _record_fetch(self, row: DeviceRow, req: FetchRequest, rendered: Rendered) -> None:
        now = utcnow()
        agent = req.user_agent[:200]
        try:
            with write_transaction(self.db):
                ConfigFetch.insert(device=row.id, config_version=row.config_version,
                                   filename=req.filename, at=now, address=req.source,
                                   user_agent=agent).execute()
                Device.update(fetched_version=row.config_version, last_fetch_at=now,
                              last_user_agent=agent,
                              last_address=new_address(row.last_address, req.source)).where(
                    Device.id == row.id).execute()
        except Exception:
            self._recorded.pop((row.id, req.filename), None)  # try again on the next fetch
            raise
        log.info("phone %s fetched config v%d (%s from %s)", row.mac, row.config_version,
                 req.filename, req.source)
