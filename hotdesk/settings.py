"""Configuration: one INI file, every option overridable by an environment variable.

An option ``key`` in section ``[sect]`` is overridden by ``HOTDESK_SECT_KEY``
(``[database] url`` -> ``HOTDESK_DATABASE_URL``, ``[prompts.asterisk] enter_pin`` ->
``HOTDESK_PROMPTS_ASTERISK_ENTER_PIN``). Unknown sections or keys in the file, and
unknown ``HOTDESK_*`` environment variables, are an error naming the closest real
option, so a typo never silently falls back to a default. Values are checked when the
config is loaded (networks, URLs, ports, time zones, the database URL), not when a
request first needs them.
"""

from __future__ import annotations

import configparser
import dataclasses
import difflib
import ipaddress
import os
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class ConfigError(ValueError):
    """The configuration file or an override is invalid; the message says which option."""


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = "sqlite:///hotdesk.db"
    # PostgreSQL: connections one hotdesk process opens at most (a pool; each database
    # step gives its connection back), and how long a step waits for a free one.
    max_connections: int = 20
    connection_wait_seconds: int = 10


@dataclass(frozen=True)
class SwitchConfig:
    # Which switch receives check-sync NOTIFYs from the outbox: asterisk or freeswitch;
    # none = talk to no switch at all (the demo): NOTIFYs stay queued.
    type: str = "asterisk"
    # Where users' SIP accounts live: switch (read live when a config is rendered; hotdesk
    # stores no user's SIP password) | hotdesk (the password stored with the user).
    credentials: str = "switch"
    # Seconds a live account read is reused (renders of one phone's files, bursts).
    credentials_cache_seconds: float = 5.0
    # Logged-in users' accounts the worker's drift check reads from the switch per tick,
    # in rotation (0 = all every tick); a changed password is seen within
    # ceil(logged-in users / this) ticks.
    drift_reads_per_tick: int = 1000
    # Asterisk: the pjsip file hotdesk writes the idle accounts of its phones into
    # (pjsip.conf #includes it); empty = hotdesk does not create idle accounts.
    accounts_file: str = ""
    # What every generated idle account gets (Asterisk endpoint / FreeSWITCH user).
    idle_context: str = "hotdesk-idle"
    idle_codecs: str = "ulaw,alaw"
    idle_dtmf_mode: str = "rfc4733"
    # Asterisk: the pjsip transport of the generated endpoints; empty = the default one.
    idle_transport: str = ""
    # FreeSWITCH: HTTP basic credentials mod_xml_curl sends to /switch/freeswitch/directory of
    # `hotdesk web` (the idle phones' directory entries); empty password = endpoint off.
    directory_username: str = "hotdesk"
    directory_password: str = ""


@dataclass(frozen=True)
class AmiConfig:
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "hotdesk"
    secret: str = ""
    # pjsip -> PJSIPNotify, sip -> chan_sip SIPnotify
    notify_action: str = "pjsip"
    reconnect_max_seconds: float = 30.0


@dataclass(frozen=True)
class AgiConfig:
    listen: str = "127.0.0.1:4573"
    # Seconds a FastAGI client may take to send its environment block.
    header_timeout: float = 10.0
    # Seconds to wait for the reply to one AGI command beyond its own timeout (GET DATA),
    # so a stalled switch cannot pin a call task forever.
    command_timeout: float = 60.0
    # Threads that run the (blocking) database steps of calls and the NOTIFY drain.
    db_threads: int = 4


@dataclass(frozen=True)
class EslConfig:
    listen: str = "127.0.0.1:8084"
    host: str = "127.0.0.1"
    port: int = 8021
    password: str = "ClueCon"
    profile: str = "internal"
    reconnect_max_seconds: float = 30.0
    # Calls doing database work at the same moment (the rest wait their turn).
    db_slots: int = 4


@dataclass(frozen=True)
class WebConfig:
    listen: str = "127.0.0.1:8080"
    secret_key: str = ""
    debug: bool = False
    # Where a generated secret_key is kept when secret_key is empty; "" = next to the
    # SQLite database file, or hotdesk-web.secret in the working directory.
    secret_key_file: str = ""
    # Secure flag on the session cookie: auto (when the request came over https) | true | false
    cookie_secure: str = "auto"
    # A phone not seen (config fetch or call) for this long counts as offline.
    offline_after_minutes: int = 1440
    # Sign-in throttling, per username and per client address.
    signin_max_failures: int = 5
    signin_window_minutes: int = 15
    # TLS served directly: certificate chain and key (PEM; key "" = in certfile). Both
    # empty = plain HTTP. Reloaded on SIGHUP.
    tls_certfile: str = ""
    tls_keyfile: str = ""
    # With TLS: a plain-HTTP HOST:PORT that redirects admin pages to https (308) and still
    # serves /prov/ and /healthz to phones not moved to https yet; "" = none.
    redirect_listen: str = ""
    # Strict-Transport-Security max-age on admin pages served over https; 0 = no header.
    hsts_seconds: int = 31536000
    # Reverse proxies (CIDRs) whose X-Forwarded-For / X-Forwarded-Proto are believed.
    trusted_proxies: str = ""
    # Connection limits of the web server: open connections (more get 503), seconds to
    # send a complete request head, seconds an idle keep-alive connection stays open.
    max_connections: int = 4096
    request_timeout_seconds: float = 10.0
    keepalive_seconds: int = 5


@dataclass(frozen=True)
class ProvisioningConfig:
    # Phones fetch <base_url>/<device token>/<file name>.
    base_url: str = "http://127.0.0.1:8080/prov"
    templates_dir: str = ""
    render_dir: str = ""
    allow_networks: str = ""
    # Registrar the rendered configs point at when a tenant sets none.
    registrar: str = "127.0.0.1:5060"
    voicemail_number: str = "*97"
    timezone: str = "UTC"
    fetch_timeout_seconds: int = 120
    # HTTP authentication of config fetches: none (the URL token is the secret) | basic | digest
    auth: str = "none"
    # User name phones send with basic/digest: "mac" (the phone's MAC) or one fixed name.
    # The password is always the device's provisioning token.
    auth_username: str = "mac"
    # A phone polling an unchanged config is recorded (config_fetch row, last_fetch_at) at
    # most this often per file; a new version, address or User-Agent is recorded at once.
    fetch_record_seconds: int = 300
    # hotdesk prov-serve (optional lean config server): its HOST:PORT and worker
    # processes (0 = one per CPU). Point base_url at it to use it.
    listen: str = "127.0.0.1:8081"
    workers: int = 0
    # SIP transport phones register with: udp | tcp | tls (a phone's own transport wins).
    transport: str = "udp"
    # Media encryption the configs ask for: off | optional | required.
    srtp: str = "off"
    # Phones re-fetch their config on their own about this often (each phone a little
    # earlier or later, so a fleet does not poll at once); 0 = only on check-sync.
    resync_minutes: int = 360

    # hotdesk prov-serve over TLS: certificate chain and key (PEM), reloaded on SIGHUP.
    tls_certfile: str = ""
    tls_keyfile: str = ""
    # Mutual TLS: CA bundle (PEM) of the phones' device certificates. When set, prov-serve
    # requires a client certificate naming the MAC of the requested file (and hotdesk web
    # refuses config fetches, having no client certificate to check).
    client_ca: str = ""
    # Reverse proxies (CIDRs) whose X-Forwarded-For is believed for allow_networks, the
    # audit and fetch records (hotdesk prov-serve; hotdesk web uses [web] trusted_proxies).
    trusted_proxies: str = ""


@dataclass(frozen=True)
class PolicyConfig:
    # auto_logout | deny | allow
    multiple_login: str = "auto_logout"
    # Which PIN a caller keys: switch = their voicemail PIN, read live from the switch
    # during the call (Asterisk VM_INFO, FreeSWITCH vm-password); hotdesk = a PIN hashed
    # in hotdesk's database (for switches without voicemail). A tenant may override it;
    # tenants upgraded from a version that had only hotdesk PINs keep "hotdesk".
    pin_source: str = "switch"
    pin_tries_per_call: int = 3
    pin_max_digits: int = 8
    pin_timeout_ms: int = 5000
    lockout_failures: int = 5
    lockout_window_minutes: int = 15
    lockout_minutes: int = 15
    # 0 = no maximum login time
    max_login_minutes: int = 0
    # HH:MM in [policy] timezone, empty = no daily logout
    daily_logout_time: str = ""
    # IANA zone name for daily_logout_time, e.g. Europe/Berlin
    timezone: str = "UTC"
    login_code: str = "*70"
    logout_code: str = "*71"


@dataclass(frozen=True)
class NotifyConfig:
    max_attempts: int = 8
    backoff_seconds: float = 2.0
    backoff_max_seconds: float = 300.0
    poll_seconds: float = 1.0
    # A NOTIFY caused by a call (*70/*71) waits this long, so the phone is not
    # re-provisioned while the caller still hears the confirmation prompt.
    call_grace_seconds: float = 2.0
    # Seconds a drainer holds the rows it claimed; renewed before a send when less than
    # two thirds are left, so it must be at least 1.5 x the slowest single send (AMI
    # gives up after 15 s, the Event Socket after 5 s).
    lease_seconds: float = 30.0
    # Which sender `hotdesk worker` drains the outbox with: none (the agi/esl process
    # drains), log (a dry run), or "module:factory" (see hotdesk.notify.drain).
    sender: str = "none"
    # Phones per second a "push check-sync to all" campaign releases to the outbox, over
    # all campaigns and nodes (hotdesk.notify.pacing); logins' NOTIFYs are not paced.
    # 20/s: a phone may fetch up to 3 files per NOTIFY, so at most 60 fetches/s, under a
    # quarter of prov-serve's slowest measured case (a TLS handshake per fetch, 260-340
    # req/s on 2 cores; docs/benchmarks-provisioning.md); 10,000 phones in about 8 min.
    push_rate: float = 20.0


@dataclass(frozen=True)
class WorkerConfig:
    # Seconds between two worker ticks (auto-logout, reconciliation, housekeeping).
    interval_seconds: float = 30.0
    # Re-sent NOTIFYs per config version before a phone is left "pending" for an admin.
    reconcile_max_requeues: int = 3
    # Upper bound of the doubling wait between two re-sent NOTIFYs.
    reconcile_backoff_max_seconds: int = 3600


@dataclass(frozen=True)
class RegistrationsConfig:
    # `hotdesk agi` / `hotdesk esl` watch the switch's registrations on a connection of
    # their own (AMI: read = system,security; ESL: sofia::register events).
    watch: bool = True
    # Seconds between two full listings of the switch's registrations (missed events).
    resync_seconds: float = 300.0
    # Events held in memory while the database is slow; older ones are dropped beyond it
    # (the next listing repairs what they would have said).
    buffer_max: int = 50000
    # Events written per transaction, and the longest an event waits to be written.
    batch_max: int = 2000
    flush_seconds: float = 0.5


@dataclass(frozen=True)
class MetricsConfig:
    # HOST:PORT of a per-process Prometheus endpoint for agi/esl/worker; empty = off.
    listen: str = ""
    # /metrics of `hotdesk web` needs this bearer token (empty = that page is off);
    # allow_networks (comma-separated CIDRs), when set, also limits the scrapers' address.
    token: str = ""
    allow_networks: str = ""
    # Name of this node in heartbeats and `hotdesk status`; empty = host name.
    node: str = ""


@dataclass(frozen=True)
class TenantConfig:
    # SIP domain of the default tenant, used by single-tenant PBXs.
    default_domain: str = "default"


@dataclass(frozen=True)
class PnpConfig:
    # Unicast SIP listener HOST:PORT for PnP SUBSCRIBEs; empty = no unicast listener.
    listen: str = ""
    # Join the SIP PnP multicast group (RFC 6080 ua-profile discovery).
    multicast: bool = True
    multicast_group: str = "224.0.1.75"
    multicast_port: int = 5060
    # LAN address of the interface the phones are on; empty = the kernel's default.
    interface: str = ""
    # SUBSCRIBEs accepted per source address per window; more are dropped.
    rate_limit: int = 10
    rate_window_seconds: float = 60.0
    # SIP timer T1 (NOTIFY retransmission starts here and doubles) and the give-up time.
    t1_ms: int = 500
    notify_timeout_seconds: float = 8.0
    # Source networks a PnP answer may carry a provisioning URL to; empty = the private,
    # link-local and loopback ranges. Others are recorded and answered without a URL.
    allow_networks: str = ""
    # How long `hotdesk pnp arm MAC` (or the phone page's button) lets an already
    # provisioned phone get its URL by PnP again.
    arm_minutes: int = 30


@dataclass(frozen=True)
class RpsConfig:
    # vendor=service pairs: which redirect service a phone vendor's MACs go to.
    vendors: str = "yealink=yealink,htek=htek,akuvox=akuvox,snom=snom"
    # XML-RPC redirect services (Yealink RPS and the same API at Htek and Akuvox).
    yealink_url: str = "https://rps.yealink.com/xmlrpc"
    yealink_username: str = ""
    yealink_password: str = ""
    htek_url: str = ""
    htek_username: str = ""
    htek_password: str = ""
    akuvox_url: str = ""
    akuvox_username: str = ""
    akuvox_password: str = ""
    # Server entry name created in the XML-RPC services for hotdesk's devices.
    server_name: str = "hotdesk"
    # Take over a MAC already registered in this account to another server.
    override: bool = True
    # Snom SRAPS (REST, Hawk authentication): access key id and secret.
    snom_url: str = "https://api.sraps.snom.com/api/v1/"
    snom_username: str = ""
    snom_password: str = ""
    timeout_seconds: float = 15.0


@dataclass(frozen=True)
class LogConfig:
    level: str = "INFO"


@dataclass(frozen=True)
class EmergencyConfig:
    # Emergency numbers (comma-separated) whose calls are watched and notified, and that
    # `hotdesk doctor` checks are dialable; the shipped dialplans route these three.
    numbers: str = "112,911,999"
    # Watch the switch for emergency calls (agi: a second AMI login with Events: call;
    # esl: CHANNEL_CREATE events) and notify the points below.
    watch: bool = True
    # On-site notification: a JSON POST to this URL; empty = none.
    webhook_url: str = ""
    webhook_timeout_seconds: float = 5.0
    # E-mail to these addresses (comma-separated) through this SMTP server; empty = none.
    mail_to: str = ""
    mail_from: str = "hotdesk@localhost"
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_username: str = ""
    smtp_password: str = ""
    # How long a call stays on the web admin's dashboard banner (minutes).
    banner_minutes: int = 60


# Logical prompt name -> sound file, per switch. Asterisk names are core sounds
# (asterisk-core-sounds-en); FreeSWITCH names are from the standard English sound set.
ASTERISK_PROMPTS: dict[str, str] = {
    "enter_pin": "agent-pass",  # "Please enter your password followed by the pound key."
    "login_ok": "agent-loginok",  # "Agent logged in."
    "logout_ok": "agent-loggedoff",  # "Agent logged off."
    "wrong_pin": "vm-incorrect",  # "Login incorrect." (the next PIN prompt follows)
    "locked": "confbridge-pin-bad",  # "You have entered too many invalid ... numbers."
    "unknown_extension": "pbx-invalid",  # "I am sorry, that's not a valid extension."
    "not_enabled": "ss-noservice",  # "The number you have dialed is not in service."
    "not_hotdesk_phone": "feature-not-avail-line",  # "That feature is not available on this line."
    # *71 on an idle phone: not "Agent logged off" (nothing was logged off). The core
    # sounds have no "not logged in"; this is the nearest true sentence.
    "not_logged_in": "feature-not-avail-line",  # "That feature is not available on this line."
    "ambiguous_device": "cannot-complete-as-dialed",
    "already_logged_in": "agent-alreadyon",  # "That agent is already logged on. ..."
    "no_pin": "vm-goodbye",
    "error": "please-try-call-later",  # "Please try your call again later."
    "goodbye": "vm-goodbye",
}

FREESWITCH_PROMPTS: dict[str, str] = {
    "enter_pin": "ivr/ivr-please_enter_pin_followed_by_pound.wav",
    "login_ok": "ivr/ivr-you_are_now_logged_in.wav",
    "logout_ok": "ivr/ivr-you_are_now_logged_out.wav",
    "wrong_pin": "voicemail/vm-fail_auth.wav",
    # ivr-access_denied.wav is not part of the callie set: these use files that are.
    "locked": "voicemail/vm-abort.wav",
    "unknown_extension": "ivr/ivr-that_was_an_invalid_entry.wav",
    "not_enabled": "ivr/ivr-that_was_an_invalid_entry.wav",
    "not_hotdesk_phone": "ivr/ivr-that_was_an_invalid_entry.wav",
    "not_logged_in": "ivr/ivr-that_was_an_invalid_entry.wav",
    "ambiguous_device": "ivr/ivr-please_try_again.wav",
    "already_logged_in": "ivr/ivr-please_try_again.wav",
    "no_pin": "voicemail/vm-goodbye.wav",
    "error": "ivr/ivr-please_try_again.wav",
    "goodbye": "voicemail/vm-goodbye.wav",
}


@dataclass(frozen=True)
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    switch: SwitchConfig = field(default_factory=SwitchConfig)
    ami: AmiConfig = field(default_factory=AmiConfig)
    agi: AgiConfig = field(default_factory=AgiConfig)
    esl: EslConfig = field(default_factory=EslConfig)
    web: WebConfig = field(default_factory=WebConfig)
    provisioning: ProvisioningConfig = field(default_factory=ProvisioningConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    registrations: RegistrationsConfig = field(default_factory=RegistrationsConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    tenant: TenantConfig = field(default_factory=TenantConfig)
    pnp: PnpConfig = field(default_factory=PnpConfig)
    rps: RpsConfig = field(default_factory=RpsConfig)
    log: LogConfig = field(default_factory=LogConfig)
    emergency: EmergencyConfig = field(default_factory=EmergencyConfig)
    prompts_asterisk: dict[str, str] = field(default_factory=lambda: dict(ASTERISK_PROMPTS))
    prompts_freeswitch: dict[str, str] = field(default_factory=lambda: dict(FREESWITCH_PROMPTS))

    def prompts(self, switch: str) -> dict[str, str]:
        return self.prompts_asterisk if switch == "asterisk" else self.prompts_freeswitch


_PROMPT_SECTIONS = {
    "prompts.asterisk": "prompts_asterisk",
    "prompts.freeswitch": "prompts_freeswitch",
}


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` too) into a host and an int port."""
    host, sep, port = value.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()):
        raise ConfigError(f"listen address {value!r} must be HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


def _coerce(section: str, key: str, current: Any, raw: str) -> Any:
    try:
        if isinstance(current, bool):
            low = raw.strip().lower()
            if low not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                raise ValueError(raw)
            return low in {"1", "true", "yes", "on"}
        if isinstance(current, int):
            return int(raw)
        if isinstance(current, float):
            return float(raw)
    except ValueError:
        kind = type(current).__name__
        raise ConfigError(f"[{section}] {key} = {raw!r} is not a valid {kind}") from None
    return raw.strip()


def load_config(path: str | os.PathLike[str] | None = None,
                environ: Mapping[str, str] | None = None) -> Config:
    """Read the INI file (if any), then apply HOTDESK_* environment overrides."""
    environ = os.environ if environ is None else environ
    path = path or environ.get("HOTDESK_CONFIG") or None
    values: dict[str, dict[str, str]] = {}
    if path:
        parser = configparser.ConfigParser(interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        try:
            with open(path, encoding="utf-8") as fh:
                parser.read_file(fh)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        except configparser.Error as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"config file {path} is not UTF-8 text") from None
        values = {s: dict(parser.items(s)) for s in parser.sections()}
    return _build(values, environ, source=str(path or "defaults"))


# Options an older hotdesk had, and what to write instead: a clear error, never a
# silently ignored line.
REPLACED_OPTIONS: dict[tuple[str, str], str] = {
    ("esl", "pin_source"): "use [policy] pin_source = switch (the voicemail PIN read live "
                           "from the switch; was 'directory') or hotdesk",
}


def _build(values: dict[str, dict[str, str]], environ: Mapping[str, str], source: str) -> Config:
    base = Config()
    kwargs: dict[str, Any] = {}
    sections = {f.name: f for f in dataclasses.fields(Config) if not f.name.startswith("prompts_")}
    for name in values:
        if name not in sections and name not in _PROMPT_SECTIONS:
            raise ConfigError(f"{source}: unknown section [{name}]")
    for (name, key), instead in REPLACED_OPTIONS.items():
        env_key = f"HOTDESK_{name}_{key}".upper()
        if env_key in environ:
            raise ConfigError(f"environment: {env_key} is gone: {instead}")
    for name in sections:
        current = getattr(base, name)
        given = values.get(name, {})
        known = {f.name for f in dataclasses.fields(current)}
        for key in given:
            if (name, key) in REPLACED_OPTIONS:
                raise ConfigError(f"{source}: [{name}] {key} is gone: "
                                  f"{REPLACED_OPTIONS[name, key]}")
            if key not in known:
                raise ConfigError(f"{source}: unknown option {key!r} in [{name}]")
        changes: dict[str, Any] = {}
        for key in known:
            env_key = f"HOTDESK_{name}_{key}".upper()
            raw = environ.get(env_key, given.get(key))
            if raw is not None:
                changes[key] = _coerce(name, key, getattr(current, key), raw)
        kwargs[name] = dataclasses.replace(current, **changes)
    for section, attr in _PROMPT_SECTIONS.items():
        prompts = dict(getattr(base, attr))
        given = values.get(section, {})
        for key in given:
            if key not in prompts:
                raise ConfigError(f"{source}: unknown prompt {key!r} in [{section}]")
        prompts.update(given)
        prefix = f"HOTDESK_{section.replace('.', '_')}_".upper()
        for env_key, raw in environ.items():
            if env_key.startswith(prefix) and env_key[len(prefix):].lower() in prompts:
                prompts[env_key[len(prefix):].lower()] = raw
        kwargs[attr] = prompts
    _refuse_unknown_env(environ)
    config = Config(**kwargs)
    _validate(config)
    return config


# HOTDESK_* variables that are not options: the config file's path, the demo's venv,
# and the test and benchmark harnesses' own settings.
_ENV_NOT_OPTIONS = {"HOTDESK_CONFIG", "HOTDESK_VENV"}
_ENV_NOT_OPTION_PREFIXES = ("HOTDESK_TEST_", "HOTDESK_BENCH_")


def env_names() -> list[str]:
    """Every ``HOTDESK_*`` variable that sets an option."""
    base = Config()
    names = [f"HOTDESK_{f.name}_{sub.name}".upper() for f in dataclasses.fields(Config)
             if not f.name.startswith("prompts_")
             for sub in dataclasses.fields(getattr(base, f.name))]
    for section, attr in _PROMPT_SECTIONS.items():
        prefix = f"HOTDESK_{section.replace('.', '_')}_".upper()
        names += [prefix + key.upper() for key in getattr(base, attr)]
    return names


def _refuse_unknown_env(environ: Mapping[str, str]) -> None:
    known = set(env_names())
    for name in sorted(environ):
        if (not name.startswith("HOTDESK_") or name in known or name in _ENV_NOT_OPTIONS
                or name.startswith(_ENV_NOT_OPTION_PREFIXES)):
            continue
        close = difflib.get_close_matches(name, known | _ENV_NOT_OPTIONS, n=1, cutoff=0.8)
        hint = f"; did you mean {close[0]}?" if close else " (no such option)"
        raise ConfigError(f"unknown environment variable {name}{hint}")


def _validate(config: Config) -> None:
    choices = {
        ("switch", "type"): (config.switch.type, {"asterisk", "freeswitch", "none"}),
        ("ami", "notify_action"): (config.ami.notify_action, {"pjsip", "sip"}),
        ("policy", "pin_source"): (config.policy.pin_source, {"switch", "hotdesk"}),
        ("switch", "credentials"): (config.switch.credentials, {"switch", "hotdesk"}),
        ("switch", "idle_dtmf_mode"): (config.switch.idle_dtmf_mode,
                                       {"rfc4733", "inband", "info", "auto", "auto_info"}),
        ("policy", "multiple_login"): (config.policy.multiple_login,
                                       {"auto_logout", "deny", "allow"}),
        ("web", "cookie_secure"): (config.web.cookie_secure, {"auto", "true", "false"}),
        ("provisioning", "auth"): (config.provisioning.auth, {"none", "basic", "digest"}),
        ("provisioning", "transport"): (config.provisioning.transport, {"udp", "tcp", "tls"}),
        ("provisioning", "srtp"): (config.provisioning.srtp, {"off", "optional", "required"}),
    }
    for (section, key), (value, allowed) in choices.items():
        if value not in allowed:
            raise ConfigError(f"[{section}] {key} = {value!r}; expected one of {sorted(allowed)}")
    for section, value in (("agi", config.agi.listen), ("esl", config.esl.listen),
                           ("web", config.web.listen)):
        try:
            parse_listen(value)
        except ConfigError as exc:
            raise ConfigError(f"[{section}] listen: {exc}") from None
    if config.provisioning.listen:
        try:
            parse_listen(config.provisioning.listen)
        except ConfigError as exc:
            raise ConfigError(f"[provisioning] listen: {exc}") from None
    _validate_tls(config)
    if config.pnp.listen:
        try:
            parse_listen(config.pnp.listen)
        except ConfigError as exc:
            raise ConfigError(f"[pnp] listen: {exc}") from None
    if config.pnp.rate_limit < 1 or config.pnp.t1_ms < 1 or config.pnp.arm_minutes < 1:
        raise ConfigError("[pnp] rate_limit, t1_ms and arm_minutes must be at least 1")
    if config.database.max_connections < 1 or config.database.connection_wait_seconds < 1:
        raise ConfigError("[database] max_connections and connection_wait_seconds must be at "
                          "least 1")
    if config.notify.lease_seconds <= 0:
        raise ConfigError("[notify] lease_seconds must be more than 0")
    if config.policy.pin_tries_per_call < 1:
        raise ConfigError("[policy] pin_tries_per_call must be at least 1")
    if config.metrics.listen:
        try:
            parse_listen(config.metrics.listen)
        except ConfigError as exc:
            raise ConfigError(f"[metrics] listen: {exc}") from None
    _validate_daily_logout(config.policy)
    _validate_provisioning_zone(config.provisioning)
    _validate_values(config)


def _validate_values(config: Config) -> None:
    """Values that used to fail only when first used (a 500 on every fetch, a traceback)."""
    _check_database_url(config.database.url)
    for section, value in (("provisioning", config.provisioning.allow_networks),
                           ("metrics", config.metrics.allow_networks)):
        for part in value.replace(",", " ").split():
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError:
                raise ConfigError(f"[{section}] allow_networks: {part!r} is not a network "
                                  "(e.g. 10.0.0.0/8, 192.168.1.20, fd00::/8)") from None
    urls = [("provisioning", "base_url", config.provisioning.base_url, True)]
    urls += [("rps", f"{service}_url", getattr(config.rps, f"{service}_url"), False)
             for service in ("yealink", "htek", "akuvox", "snom")]
    for section, key, value, required in urls:
        if (value or required) and not _is_http_url(value):
            raise ConfigError(f"[{section}] {key} = {value!r} is not an http:// or https:// "
                              "URL with a host")
    for section, key, port in (("ami", "port", config.ami.port), ("esl", "port", config.esl.port),
                               ("pnp", "multicast_port", config.pnp.multicast_port)):
        if not 1 <= port <= 65535:
            raise ConfigError(f"[{section}] {key} = {port} is not a port (1 to 65535)")
    for section, value in (("agi", config.agi.listen), ("esl", config.esl.listen),
                           ("web", config.web.listen), ("provisioning", config.provisioning.listen),
                           ("pnp", config.pnp.listen), ("metrics", config.metrics.listen)):
        if value and not 0 <= parse_listen(value)[1] <= 65535:
            raise ConfigError(f"[{section}] listen = {value!r}: the port must be 0 to 65535")
    try:
        if not ipaddress.ip_address(config.pnp.multicast_group).is_multicast:
            raise ValueError
    except ValueError:
        raise ConfigError(f"[pnp] multicast_group = {config.pnp.multicast_group!r} is not a "
                          "multicast address (the standard one is 224.0.1.75)") from None
    if config.log.level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ConfigError(f"[log] level = {config.log.level!r}; expected DEBUG, INFO, WARNING, "
                          "ERROR or CRITICAL")
    positive = {("agi", "db_threads"): config.agi.db_threads,
                ("esl", "db_slots"): config.esl.db_slots,
                ("notify", "max_attempts"): config.notify.max_attempts,
                ("notify", "push_rate"): config.notify.push_rate,
                ("worker", "interval_seconds"): config.worker.interval_seconds,
                ("provisioning", "fetch_timeout_seconds"):
                    config.provisioning.fetch_timeout_seconds}
    for (section, key), number in positive.items():
        if number <= 0:
            raise ConfigError(f"[{section}] {key} = {number} must be more than 0")
    if config.switch.drift_reads_per_tick < 0:
        raise ConfigError(f"[switch] drift_reads_per_tick = {config.switch.drift_reads_per_tick}"
                          " must be 0 (every account every tick) or more")


def _is_http_url(value: str) -> bool:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError:
        return False
    return (parts.scheme in ("http", "https") and bool(parts.hostname)
            and not any(c.isspace() for c in value))


def _check_database_url(url: str) -> None:
    from urllib.parse import urlsplit

    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        if not url.startswith("sqlite:///") or url == "sqlite:///":
            raise ConfigError(f"[database] url = {url!r}: write sqlite:///RELATIVE/FILE or "
                              "sqlite:////ABSOLUTE/FILE")
        return
    if scheme in ("postgresql", "postgres"):
        if not urlsplit(url).path.strip("/"):
            raise ConfigError("[database] url: the PostgreSQL URL names no database "
                              "(postgresql://USER:PASSWORD@HOST/DATABASE)")
        return
    raise ConfigError(f"[database] url: unsupported database {scheme or url[:20]!r}; use "
                      "sqlite:///FILE or postgresql://USER:PASSWORD@HOST/DATABASE")


def _require_zone(section: str, name: str) -> None:

    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"[{section}] timezone = {name!r} is not a known "
                          "time zone (e.g. UTC, Europe/Berlin)") from None


def _validate_provisioning_zone(prov: ProvisioningConfig) -> None:
    _require_zone("provisioning", prov.timezone)
    if prov.resync_minutes < 0:
        raise ConfigError("[provisioning] resync_minutes must be 0 (off) or more")


def _validate_tls(config: Config) -> None:
    """TLS file pairs and proxy lists are checked at start, not at the first request."""

    for section, cert, key in (("web", config.web.tls_certfile, config.web.tls_keyfile),
                               ("provisioning", config.provisioning.tls_certfile,
                                config.provisioning.tls_keyfile)):
        if key and not cert:
            raise ConfigError(f"[{section}] tls_keyfile is set without tls_certfile")
    if config.provisioning.client_ca and not config.provisioning.tls_certfile:
        raise ConfigError("[provisioning] client_ca needs tls_certfile (mutual TLS is TLS)")
    if config.web.redirect_listen:
        if not config.web.tls_certfile:
            raise ConfigError("[web] redirect_listen needs tls_certfile (it redirects to https)")
        try:
            parse_listen(config.web.redirect_listen)
        except ConfigError as exc:
            raise ConfigError(f"[web] redirect_listen: {exc}") from None
    for option, text in (("[web] trusted_proxies", config.web.trusted_proxies),
                         ("[provisioning] trusted_proxies", config.provisioning.trusted_proxies)):
        try:
            parse_networks(text, option)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if config.web.max_connections < 1 or config.web.request_timeout_seconds <= 0:
        raise ConfigError("[web] max_connections and request_timeout_seconds must be positive")


def _validate_daily_logout(policy: PolicyConfig) -> None:
    _require_zone("policy", policy.timezone)
    if policy.daily_logout_time and parse_hhmm(policy.daily_logout_time) is None:
        raise ConfigError(f"[policy] daily_logout_time = {policy.daily_logout_time!r} "
                          "must be HH:MM")


def parse_hhmm(value: str) -> tuple[int, int] | None:
    """``"23:30"`` -> (23, 30); None when it is not a valid time of day."""
    hh, sep, mm = value.strip().partition(":")
    if not sep or not (hh + mm).isascii() or not (hh.isdigit() and mm.isdigit()) or len(mm) != 2:
        return None
    h, m = int(hh), int(mm)
    return (h, m) if 0 <= h < 24 and 0 <= m < 60 else None


def example_ini() -> str:
    """The full default configuration as an INI file (``hotdesk config example``)."""
    base = Config()
    lines: list[str] = []
    for f in dataclasses.fields(Config):
        value = getattr(base, f.name)
        if f.name.startswith("prompts_"):
            lines.append(f"[prompts.{f.name.removeprefix('prompts_')}]")
            lines += [f"{k} = {v}" for k, v in value.items()]
        else:
            lines.append(f"[{f.name}]")
            for sub in dataclasses.fields(value):
                v = getattr(value, sub.name)
                lines.append(f"{sub.name} = {str(v).lower() if isinstance(v, bool) else v}")
        lines.append("")
    return "\n".join(lines)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str, option: str = "[provisioning] allow_networks") -> list[Network]:
    """``[provisioning] allow_networks`` and the like: CIDRs separated by commas or spaces."""
    nets: list[Network] = []
    for part in re.split(r"[\s,]+", text.strip()):
        if part:
            try:
                nets.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(f"{option}: {part!r} is not a network "
                                 "such as 192.0.2.0/24") from None
    return nets
