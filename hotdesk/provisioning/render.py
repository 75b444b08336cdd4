"""Rendering a phone's config: which profile it should have now, through its vendor template.

The profile is computed from the database every time (idle extension, or the logged-in
user's account), so a re-provisioning is only "bump config_version + NOTIFY": the
phone's next fetch gets the new file.

Templates are data: an admin's ``[provisioning] templates_dir`` is searched before the
shipped ``provisioning_templates``. A broken template must not take a desk down, so a
render error raises :class:`TemplateError` (file and line, for the log and the web
admin) and :class:`ConfigCache` keeps serving the last config that rendered.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from hotdesk.provisioning import clock
from hotdesk.provisioning.vendors import Vendor, get_vendor
from hotdesk.settings import Config
from hotdesk.store.models import Device, Session, Tenant, User
from hotdesk.switch.accounts import (
    AccountError,
    AccountMissing,
    AccountReader,
    user_credentials,
)

log = logging.getLogger(__name__)

LANGUAGES = {"en": "English", "fr": "French", "de": "German", "es": "Spanish",
             "it": "Italian", "nl": "Dutch", "pt": "Portuguese", "pl": "Polish"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DIALABLE = re.compile(r"[^0-9A-Za-z*#+@._\-]")
FILE_MODE = 0o640
DIR_MODE = 0o750


@dataclass(frozen=True)
class Profile:
    """Everything a vendor template may use. Nothing here belongs to another user."""

    idle: bool
    mac: str
    model: str
    config_version: int
    extension: str
    label: str
    display_name: str
    sip_username: str
    auth_username: str
    sip_password: str
    registrar_host: str
    registrar_port: int
    outbound_proxy_host: str
    outbound_proxy_port: int
    voicemail_number: str
    language: str
    language_name: str
    timezone: str
    login_code: str
    logout_code: str
    keys: list[dict[str, str]] = field(default_factory=list)
    # Current offset of ``timezone`` from UTC, for vendors that take an offset, not a name.
    utc_offset_minutes: int = 0
    sip_domain: str = ""
    # The phone switches DST itself (its vendor can be told this zone's rule); False: it
    # gets today's offset with its DST off and is re-provisioned at each change.
    follows_dst: bool = False
    # The zone's POSIX TZ rule and month/week/weekday/hour rule, when the phone follows it.
    posix_tz: str = ""
    dst: clock.DstRule | None = None
    transport: str = "udp"  # udp | tcp | tls, to the registrar or the SBC
    srtp: str = "off"  # off | optional | required
    # This phone's own provisioning URL (ends with "/"), written back into its config so
    # a phone bootstrapped by PnP, RPS or DHCP keeps polling hotdesk.
    provisioning_url: str = ""
    # HTTP credentials for that URL when [provisioning] auth is on; "" otherwise.
    prov_username: str = ""
    prov_password: str = ""
    # Periodic re-fetch, randomised per phone; 0 = only on check-sync.
    resync_seconds: int = 0
    family: str = ""  # the vendor's model family (hotdesk.provisioning.vendors.Family)
    model_known: bool = True


class TemplateError(Exception):
    """A vendor template failed to compile or render; says which file and line."""

    def __init__(self, template: str, line: int | None, message: str, source: str = "") -> None:
        self.template = template
        self.line = line
        self.message = message
        self.source = source  # the file on disk, when known
        where = f"{template} line {line}" if line else template
        super().__init__(f"template {where}: {message}")


def device_url(config: Config, device: Device) -> str:
    """The provisioning URL a phone is given (PnP NOTIFY body, RPS, DHCP option 66).

    The device's random token is the secret: the URL alone grants its config.
    """
    return f"{config.provisioning.base_url.rstrip('/')}/{device.prov_token}/"


def split_hostport(value: str, default_port: int = 5060) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if sep and port.isdigit() and not host.endswith(":"):
        return host.strip("[]"), int(port)
    return value.strip("[]"), default_port


def clean(value: Any) -> str:
    """One line of text: control bytes (CR, LF, NUL, ...) become spaces.

    A display name with a newline must not start a new ``key = value`` line, and XML
    1.0 cannot carry most control characters at all.
    """
    return _CONTROL.sub(" ", str(value if value is not None else "")).strip()


def config_value(value: Any) -> str:
    """Make a value safe on one ``key = value`` line: no line breaks or control bytes."""
    return clean(value)


def dialstring(value: Any) -> str:
    """Only characters a phone dials: a key value cannot smuggle a vendor macro in."""
    return _DIALABLE.sub("", clean(value))


def fnc_text(value: Any) -> str:
    """Text inside a Cisco ``fnc=…;nme=…`` string: ``;`` and ``=`` would start a new field."""
    return re.sub(r"[;=]", " ", clean(value)).strip()


def offset_text(minutes: int, style: str = "hours") -> str:
    """``+1``, ``-3:30`` (style hours) or ``GMT+01:00`` (style gmt) for a UTC offset."""
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    if style == "gmt":
        return f"GMT{sign}{hours:02d}:{mins:02d}"
    return f"{sign}{hours}" + (f":{mins:02d}" if mins else "")


utc_offset_minutes = clock.utc_offset_minutes


def posix_fixed(minutes: int) -> str:
    """A POSIX TZ string for a fixed offset: UTC+1 is "UTC-1" (POSIX counts westwards)."""
    west = -minutes
    hours, mins = divmod(abs(west), 60)
    return f"UTC{'-' if west < 0 else ''}{hours}" + (f":{mins:02d}" if mins else "")


def fanvil_zone_name(minutes: int) -> str:
    """Fanvil's zone label for a whole-hour offset ("UTC+1", "UTC-05", "UCT" for 0, as the
    open-source Fanvil templates list them); "" for other offsets."""
    if minutes % 60:
        return ""
    hours = minutes // 60
    if hours == 0:
        return "UCT"
    return f"UTC+{hours}" if hours > 0 else f"UTC-{-hours:02d}"


def sip_server(value: str, transport: str) -> tuple[str, int]:
    """Host and port of a SIP server for ``transport``: 5060 by default, 5061 for TLS
    (RFC 3261, section 19.1.2). Over TLS a port of 5060 (the shipped registrar default,
    or a value written for UDP) is taken as that default and becomes 5061; any other
    explicit port is kept."""
    host, port = split_hostport(value, 5060)
    if transport == "tls" and port == 5060:
        port = 5061
    return host, port


def resync_seconds(mac: str, minutes: int) -> int:
    """``minutes`` ± 20 %, the same for a phone every time (from its MAC), different across
    phones: a fleet powered on together drifts apart instead of polling in step."""
    if minutes <= 0:
        return 0
    spread = int(hashlib.blake2b(mac.encode(), digest_size=4).hexdigest(), 16) / 0xFFFFFFFF
    return int(minutes * 60 * (0.8 + 0.4 * spread))


def prov_credentials(config: Config, device: Device) -> tuple[str, str]:
    """The HTTP user and password a phone sends for its files ("" when auth is none)."""
    prov = config.provisioning
    if prov.auth == "none":
        return "", ""
    return (device.mac if prov.auth_username == "mac" else prov.auth_username,
            device.prov_token)


def _dst_fields(vendor: Vendor, zone: str) -> dict[str, Any]:
    follows = clock.follows(vendor.dst, zone)
    return {"follows_dst": follows,
            "posix_tz": clock.posix_rule(zone) if follows and vendor.dst == "posix" else "",
            "dst": clock.dst_rule(zone) if follows and vendor.dst != "posix" else None}


def phone_zone(config: Config, tenant: Tenant, user: User | None) -> str:
    """The zone a phone shows: its user's, else its tenant's, else [provisioning]."""
    return clock.zone_name(getattr(user, "timezone", "") if user is not None else "",
                           getattr(tenant, "timezone", ""), config.provisioning.timezone)


def active_user(device: Device) -> User | None:
    session = (Session.select(Session, User).join(User)
               .where((Session.device == device) & Session.ended_at.is_null()).first())
    return session.user if session else None


def _user_keys(user: User, logout_code: str) -> list[dict[str, str]]:
    try:
        raw = json.loads(user.keys_json or "[]")
    except ValueError:
        log.warning("user %s has invalid keys_json; rendering without their keys",
                    user.extension)
        raw = []
    if not isinstance(raw, list):
        raw = []
    keys = [{"type": k["type"], "value": dialstring(k.get("value", "")),
             "label": clean(k.get("label", ""))}
            for k in raw if isinstance(k, dict) and k.get("type") in {"blf", "speeddial", "line"}]
    # First, so it survives a template that shows fewer keys than the user has.
    return [{"type": "speeddial", "value": logout_code, "label": "Log out"}, *keys]


def profile_for(device: Device, config: Config, user: User | None = None,
                tenant: Tenant | None = None, now: datetime | None = None,
                known_idle: bool = False, accounts: AccountReader | None = None) -> Profile:
    """The profile ``device`` should carry now: its logged-in user's, else its idle one.

    ``known_idle``: the caller already knows no one is logged in (bulk rendering).
    ``now``: the moment the time zone's offset is taken at (default: now).
    ``accounts``: reads a user's SIP account live from the switch (``[switch]
    credentials = switch``); raises AccountError when it cannot.
    """
    if user is None and not known_idle:
        user = active_user(device)
    tenant = tenant if tenant is not None else device.tenant
    prov = config.provisioning
    transport = (getattr(device, "sip_transport", "") or prov.transport).lower()
    registrar_host, registrar_port = sip_server(tenant.registrar or prov.registrar, transport)
    proxy_host, proxy_port = ("", 0)
    if device.network == "sbc" and device.sbc_address:
        proxy_host, proxy_port = sip_server(device.sbc_address, transport)
    policy = config.policy
    vendor = get_vendor(device.vendor)
    match = vendor.family_for(device.model)
    zone = phone_zone(config, tenant, user)
    prov_user, prov_password = prov_credentials(config, device)
    common: dict[str, Any] = dict(
        mac=device.mac, model=clean(device.model), config_version=device.config_version,
        registrar_host=clean(registrar_host), registrar_port=registrar_port,
        outbound_proxy_host=clean(proxy_host), outbound_proxy_port=proxy_port,
        timezone=zone, login_code=dialstring(policy.login_code),
        logout_code=dialstring(policy.logout_code),
        utc_offset_minutes=clock.utc_offset_minutes(zone, now),
        sip_domain=clean(tenant.sip_domain),
        **_dst_fields(vendor, zone),
        transport=transport, srtp=prov.srtp, provisioning_url=device_url(config, device),
        prov_username=clean(prov_user), prov_password=clean(prov_password),
        resync_seconds=resync_seconds(device.mac, prov.resync_minutes),
        family=match.family.key, model_known=match.known,
    )
    if user is None:
        name = clean(device.display_name) or device.idle_extension
        return Profile(idle=True, extension=device.idle_extension,
                       label=f"Hot desk {name} - free",
                       display_name=clean(device.display_name)
                       or f"Hot desk {device.idle_extension}",
                       sip_username=device.idle_sip_username,
                       auth_username=device.idle_sip_username,
                       sip_password=clean(device.idle_sip_password), voicemail_number="",
                       language="en", language_name="English",
                       keys=[{"type": "speeddial", "value": common["login_code"],
                              "label": "Hot desk log in"}], **common)
    auth_username, sip_password, display_name = user_account(user, tenant, config, accounts)
    return Profile(idle=False, extension=user.extension,
                   label=clean(f"{user.extension} {user.display_name}"),
                   display_name=display_name,
                   sip_username=user.sip_username, auth_username=auth_username,
                   sip_password=sip_password,
                   voicemail_number=dialstring(config.provisioning.voicemail_number),
                   language=clean(user.language),
                   language_name=LANGUAGES.get(user.language, "English"),
                   keys=_user_keys(user, common["logout_code"]), **common)


def user_account(user: User, tenant: Tenant, config: Config,
                 accounts: AccountReader | None) -> tuple[str, str, str]:
    """(auth username, SIP password, display name) a user's config carries: all its
    fingerprint covers, without rendering the rest (the drift check's per-tick read)."""
    creds = user_credentials(user, tenant, config, accounts)
    return (clean(creds.auth_username), clean(creds.password),
            clean(user.display_name) or user.extension)


def shipped_templates_dir() -> Path:
    return Path(str(resources.files("provisioning_templates")))


def make_environment(config: Config) -> jinja2.Environment:
    """Templates from the admin's override directory first, then the shipped ones."""
    loaders: list[jinja2.BaseLoader] = []
    if config.provisioning.templates_dir:
        loaders.append(jinja2.FileSystemLoader(config.provisioning.templates_dir))
    loaders.append(jinja2.FileSystemLoader(str(shipped_templates_dir())))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        # Named by format: only XML templates are escaped (Poly's .cfg files are XML).
        autoescape=lambda name: bool(name) and name.endswith(".xml.j2"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["cfgval"] = config_value
    env.filters["dialstring"] = dialstring
    env.filters["fnc"] = fnc_text
    env.filters["offset"] = offset_text
    env.filters["fanvil_zone"] = fanvil_zone_name
    env.filters["posix_fixed"] = posix_fixed
    return env


def _template_error(exc: Exception, name: str) -> TemplateError:
    """Where in the template ``exc`` happened (jinja2 maps frames to template lines)."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return TemplateError(exc.name or name, exc.lineno, exc.message or str(exc),
                             exc.filename or "")
    line, source = None, ""
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            line, source = tb.tb_lineno, filename
        tb = tb.tb_next
    return TemplateError(name, line, f"{type(exc).__name__}: {exc}", source)


def render_template(env: jinja2.Environment, name: str, **context: Any) -> str:
    """Render one template; any failure becomes a TemplateError naming file and line."""
    try:
        return env.get_template(name).render(**context)
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(name, None, f"template not found: {exc.name}") from exc
    except Exception as exc:  # noqa: BLE001 - a template can raise anything; we report it
        raise _template_error(exc, name) from exc


def render_file(env: jinja2.Environment, device: Device, filename: str, config: Config,
                profile: Profile | None = None) -> str | None:
    """The content of ``filename`` for ``device``, or None if its vendor has no such file.

    Raises TemplateError when the template is broken.
    """
    vendor = get_vendor(device.vendor)
    spec = vendor.filenames(device.mac, device.model).get(filename)
    if spec is None:
        common = vendor.common_file(filename)
        if common is None:
            return None
        return render_template(env, common.template, vendor=vendor)
    profile = profile or profile_for(device, config)
    return render_template(env, spec.template, profile=profile, vendor=vendor)


def render_device(env: jinja2.Environment, device: Device, config: Config,
                  accounts: AccountReader | None = None) -> dict[str, str]:
    """Every per-device file the vendor requests, rendered for the current profile."""
    return render_profile(env, get_vendor(device.vendor),
                          profile_for(device, config, accounts=accounts))


def render_profile(env: jinja2.Environment, vendor: Vendor,
                   profile: Profile) -> dict[str, str]:
    """All per-device files of ``vendor`` for ``profile``; each template rendered once."""
    done: dict[str, str] = {}
    out: dict[str, str] = {}
    for name, spec in vendor.filenames(profile.mac, profile.model).items():
        if spec.template not in done:
            done[spec.template] = render_template(env, spec.template, profile=profile,
                                                  vendor=vendor)
        out[name] = done[spec.template]
    return out


def content_type(device: Device, filename: str) -> str:
    vendor = get_vendor(device.vendor)
    spec = vendor.filenames(device.mac, device.model).get(filename)
    if spec is not None:
        return spec.content_type
    common = vendor.common_file(filename)
    return common.content_type if common else "text/plain"


# -- bulk rendering -------------------------------------------------------------------


def all_profiles(config: Config, accounts: AccountReader | None = None,
                 ) -> Iterator[tuple[Device, Profile | AccountError]]:
    """Every device with its profile, from three queries instead of two per device.

    A logged-in user whose account cannot be read comes with the AccountError instead.
    """
    tenants = {t.id: t for t in Tenant.select()}
    sessions = {s.device_id: s.user for s in
                Session.select(Session, User).join(User).where(Session.ended_at.is_null())}
    now = datetime.now(UTC)
    down: AccountError | None = None
    for device in Device.select().order_by(Device.id):
        user = sessions.get(device.id)
        tenant = tenants[device.tenant_id]
        if user is None:
            # profile_for would otherwise query for a session we already know is absent
            yield device, profile_for(device, config, tenant=tenant, now=now, known_idle=True)
        elif down is not None and not user.sip_password:
            yield device, down  # one unreachable switch must not cost a timeout per user
        else:
            try:
                yield device, profile_for(device, config, user=user, tenant=tenant, now=now,
                                          accounts=accounts)
            except AccountMissing as exc:
                yield device, exc
            except AccountError as exc:
                down = exc
                yield device, exc


# -- render-to-directory ----------------------------------------------------------------


def atomic_write(path: Path, content: str, mode: int = FILE_MODE) -> None:
    """Write via a temp file in the same directory + os.replace: readers never see half."""
    path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(content)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with _suppress_oserror():
            os.unlink(tmp)
        raise


class _suppress_oserror:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> bool:
        return kind is not None and issubclass(kind, OSError)


def device_dir(render_dir: str | os.PathLike[str], device: Device) -> Path:
    """Files live under the device token, exactly as the URL ``<base_url>/<token>/<file>``."""
    return Path(render_dir) / device.prov_token


def write_device_files(env: jinja2.Environment, device: Device, config: Config,
                       profile: Profile | None = None) -> list[Path]:
    """Write every file of ``device`` into ``[provisioning] render_dir``.

    Rendering happens first and fully: a TemplateError leaves the files on disk (the
    last good config) untouched. Files the device no longer has are removed.
    """
    render_dir = config.provisioning.render_dir
    if not render_dir:
        return []
    vendor = get_vendor(device.vendor)
    files = render_profile(env, vendor, profile or profile_for(device, config))
    target = device_dir(render_dir, device)
    written = []
    for name, content in files.items():
        path = target / name
        atomic_write(path, content)
        written.append(path)
    for stale in target.iterdir() if target.exists() else ():
        if stale.is_file() and stale.name not in files and not stale.name.startswith("."):
            stale.unlink()
    return written


@dataclass
class RenderReport:
    written: int = 0
    devices: int = 0
    removed: int = 0
    errors: list[str] = field(default_factory=list)


def render_all(env: jinja2.Environment, config: Config,
               accounts: AccountReader | None = None) -> RenderReport:
    """``hotdesk provision render-all``: every device into render_dir, stale ones removed."""
    report = RenderReport()
    render_dir = Path(config.provisioning.render_dir)
    render_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    tokens = set()
    for device, profile in all_profiles(config, accounts):
        tokens.add(device.prov_token)
        try:
            if isinstance(profile, AccountError):
                raise profile
            report.written += len(write_device_files(env, device, config, profile))
            report.devices += 1
        except (TemplateError, AccountError) as exc:
            log.error("phone %s: %s; its previous files are kept", device.mac, exc)
            report.errors.append(f"{device.mac}: {exc}")
    report.removed = remove_stale_devices(render_dir, tokens)
    return report


def remove_stale_devices(render_dir: Path, tokens: Iterable[str]) -> int:
    """Delete the directories of devices that no longer exist (or got a new token)."""
    keep = set(tokens)
    removed = 0
    for entry in render_dir.iterdir() if render_dir.exists() else ():
        if entry.is_dir() and not entry.name.startswith(".") and entry.name not in keep:
            shutil.rmtree(entry)
            removed += 1
    return removed


def profile_fingerprint(device: Device, profile: Profile) -> str:
    """The fingerprint of the user account ``profile`` carries ("" for the idle one)."""
    from hotdesk.switch.accounts import Credentials, fingerprint

    if profile.idle:
        return ""
    return fingerprint(Credentials(profile.auth_username, profile.sip_password),
                       profile.display_name, device.prov_token)


def remember_fingerprint(device: Device, profile: Profile) -> None:
    """Store what account this config version carries ("" for the idle profile)."""
    value = profile_fingerprint(device, profile)
    if value != device.account_fingerprint:
        (Device.update(account_fingerprint=value)
         .where((Device.id == device.id) & (Device.config_version == device.config_version))
         .execute())
        device.account_fingerprint = value


# -- serving cache ----------------------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    """One served file, encoded once: the bytes, their ETag and the Content-Type."""

    data: bytes
    etag: str
    content_type: str
    # A file of this device (its fetch is recorded), not a vendor-wide common file.
    per_device: bool

    @property
    def text(self) -> str:
        return self.data.decode("utf-8")

    @classmethod
    def of(cls, text: str, content_type: str, per_device: bool) -> Rendered:
        data = text.encode("utf-8")
        return cls(data, f'"{hashlib.blake2b(data, digest_size=12).hexdigest()}"',
                   content_type, per_device)


class ConfigCache:
    """Rendered files per device + config version, and the last good file per device.

    Hit: same device, file, config_version, templates and UTC offset -> no render and no
    query beyond the caller's token lookup (fast serving). A template error -> the last
    good content for that device and file, if any, with the error logged; the render_dir
    copy serves as last good across restarts.
    """

    def __init__(self, config: Config, env: jinja2.Environment | None = None,
                 max_entries: int = 200_000, accounts: AccountReader | None = None) -> None:
        self.config = config
        self.env = env or make_environment(config)
        # Live reads of users' SIP accounts ([switch] credentials = switch); by default
        # one lazily opened switch connection per process.
        if accounts is None:
            from hotdesk.switch.connect import account_reader

            accounts = account_reader(config)
        self.accounts = accounts
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: dict[tuple[int, str], tuple[tuple[int, float, int], Rendered]] = {}
        self._stamp = 0.0
        self._stamp_checked = 0.0
        self._offset = 0
        self._offset_checked = -1e9
        self.last_error: TemplateError | AccountError | None = None

    def templates_stamp(self) -> float:
        """Newest mtime in templates_dir, checked at most once a second."""
        directory = self.config.provisioning.templates_dir
        if not directory:
            return 0.0
        now = time.monotonic()
        if now - self._stamp_checked >= 1.0:
            newest = 0.0
            for root, _dirs, files in os.walk(directory):
                for name in files:
                    with _suppress_oserror():
                        newest = max(newest, os.stat(os.path.join(root, name)).st_mtime)
                newest = max(newest, os.stat(root).st_mtime)
            if newest != self._stamp:
                # A changed override directory: jinja2 reloads changed files itself, but a
                # new file shadowing a shipped one needs a fresh environment.
                self.env = make_environment(self.config)
            self._stamp, self._stamp_checked = newest, now
        return self._stamp

    def zone_offset(self) -> int:
        """UTC offset of [provisioning] timezone, checked once a minute: a DST change
        re-renders the configs that carry an offset."""
        now = time.monotonic()
        if now - self._offset_checked >= 60.0:
            self._offset = utc_offset_minutes(self.config.provisioning.timezone)
            self._offset_checked = now
        return self._offset

    def get(self, device: Device, filename: str) -> str | None:
        """The file for the phone, or None if the vendor has no such file.

        Raises TemplateError only when the template is broken and nothing good is known.
        """
        hit = self.rendered(device.id, device.config_version, filename, lambda: device)
        return hit.text if hit is not None else None

    def rendered(self, device_id: int, config_version: int, filename: str,
                 load: Callable[[], Device]) -> Rendered | None:
        """The file of device ``device_id`` at ``config_version``; ``load`` fetches the
        device row only on a miss, so a hit costs no query at all."""
        key = (device_id, filename)
        version = (config_version, self.templates_stamp(), self.zone_offset())
        hit = self._entries.get(key)  # a dict read is atomic; writes take the lock
        if hit is not None and hit[0] == version:
            return hit[1]
        device = load()
        try:
            content = self._render(device, filename)
        except (TemplateError, AccountError) as exc:
            self.last_error = exc
            good = hit[1] if hit is not None else None
            if good is None:
                text = self._from_render_dir(device, filename)
                if text is not None:
                    good = self._wrap(device, filename, text)
            log.error("phone %s %s: %s; serving the %s", device.mac, filename, exc,
                      "last good config" if good is not None else "nothing (no good config "
                      "known)")
            if good is None:
                raise
            return good
        if content is None:
            return None
        entry = self._wrap(device, filename, content)
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = (version, entry)
        return entry

    def preload(self) -> int:
        """Render every device's files now, in bulk (three queries in all).

        A server that starts after a power cut meets every phone at once; with the
        files ready, a first fetch costs a lookup instead of three queries and a render.
        A device whose template fails is left to the per-request path (last good logic).
        """
        stamp, offset = self.templates_stamp(), self.zone_offset()
        count = 0
        for device, profile in all_profiles(self.config, self.accounts):
            try:
                if isinstance(profile, AccountError):
                    raise profile
                vendor = get_vendor(device.vendor)
                files = render_profile(self.env, vendor, profile)
            except (TemplateError, AccountError, ValueError) as exc:
                log.error("phone %s: %s; not preloaded", device.mac, exc)
                continue
            specs = vendor.filenames(device.mac, device.model)
            version = (device.config_version, stamp, offset)
            with self._lock:
                if len(self._entries) + len(files) > self.max_entries:
                    break
                for name, text in files.items():
                    self._entries[(device.id, name)] = (
                        version, Rendered.of(text, specs[name].content_type, True))
            count += len(files)
        return count

    def _render(self, device: Device, filename: str) -> str | None:
        """Render one file; a user's profile records the fingerprint of the account it
        carries, which the worker compares with the switch's (drift)."""
        vendor = get_vendor(device.vendor)
        if filename not in vendor.filenames(device.mac, device.model):
            return render_file(self.env, device, filename, self.config)
        profile = profile_for(device, self.config, accounts=self.accounts)
        content = render_file(self.env, device, filename, self.config, profile)
        remember_fingerprint(device, profile)
        return content

    @staticmethod
    def _wrap(device: Device, filename: str, text: str) -> Rendered:
        vendor = get_vendor(device.vendor)
        per_device = filename in vendor.filenames(device.mac, device.model)
        return Rendered.of(text, content_type(device, filename), per_device)

    def _from_render_dir(self, device: Device, filename: str) -> str | None:
        if not self.config.provisioning.render_dir:
            return None
        path = device_dir(self.config.provisioning.render_dir, device) / filename
        try:
            return path.read_text(encoding="utf-8")
        except OSError:
            return None
