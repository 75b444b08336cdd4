"""Rendering a phone's config: which profile it should have now, through its vendor template.

The profile is computed from the database every time (idle extension, or the logged-in
user's account), so a re-provisioning is only "bump config_version + NOTIFY": the
phone's next fetch gets the new file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from hotdesk.config import Config
from hotdesk.models import Device, Session, User
from hotdesk.vendors import get_vendor

LANGUAGES = {"en": "English", "fr": "French", "de": "German", "es": "Spanish",
             "it": "Italian", "nl": "Dutch", "pt": "Portuguese", "pl": "Polish"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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


def active_user(device: Device) -> User | None:
    session = (Session.select(Session, User).join(User)
               .where((Session.device == device) & Session.ended_at.is_null()).first())
    return session.user if session else None


def profile_for(device: Device, config: Config, user: User | None = None) -> Profile:
    """The profile ``device`` should carry now: its logged-in user's, else its idle one."""
    user = user if user is not None else active_user(device)
    tenant = device.tenant
    registrar_host, registrar_port = split_hostport(tenant.registrar
                                                    or config.provisioning.registrar)
    proxy_host, proxy_port = ("", 0)
    if device.network == "sbc" and device.sbc_address:
        proxy_host, proxy_port = split_hostport(device.sbc_address)
    policy = config.policy
    common = dict(
        mac=device.mac, model=device.model, config_version=device.config_version,
        registrar_host=registrar_host, registrar_port=registrar_port,
        outbound_proxy_host=proxy_host, outbound_proxy_port=proxy_port,
        timezone=config.provisioning.timezone, login_code=policy.login_code,
        logout_code=policy.logout_code,
    )
    if user is None:
        label = f"Hot desk {device.display_name or device.idle_extension} - free"
        return Profile(idle=True, extension=device.idle_extension, label=label,
                       display_name=device.display_name or f"Hot desk {device.idle_extension}",
                       sip_username=device.idle_sip_username,
                       auth_username=device.idle_sip_username,
                       sip_password=device.idle_sip_password, voicemail_number="",
                       language="en", language_name="English",
                       keys=[{"type": "speeddial", "value": policy.login_code,
                              "label": "Hot desk log in"}], **common)
    try:
        keys = [k for k in json.loads(user.keys_json or "[]")
                if isinstance(k, dict) and k.get("type") in {"blf", "speeddial", "line"}]
    except ValueError:
        keys = []
    keys = [{"type": k["type"], "value": str(k.get("value", "")),
             "label": str(k.get("label", ""))} for k in keys]
    keys.append({"type": "speeddial", "value": policy.logout_code, "label": "Log out"})
    return Profile(idle=False, extension=user.extension,
                   label=f"{user.extension} {user.display_name}".strip(),
                   display_name=user.display_name or user.extension,
                   sip_username=user.sip_username, auth_username=user.sip_username,
                   sip_password=user.sip_password,
                   voicemail_number=config.provisioning.voicemail_number,
                   language=user.language, language_name=LANGUAGES.get(user.language, "English"),
                   keys=keys, **common)


def config_value(value: Any) -> str:
    """Make a value safe on one ``key = value`` line: no line breaks or control bytes."""
    return _CONTROL.sub(" ", str(value if value is not None else "")).strip()


def make_environment(config: Config) -> jinja2.Environment:
    """Templates from the admin's override directory first, then the shipped ones."""
    loaders: list[jinja2.BaseLoader] = []
    if config.provisioning.templates_dir:
        loaders.append(jinja2.FileSystemLoader(config.provisioning.templates_dir))
    shipped = Path(str(resources.files("provisioning_templates")))
    loaders.append(jinja2.FileSystemLoader(str(shipped)))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=lambda name: bool(name) and name.endswith((".xml.j2", ".htm.j2")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["cfgval"] = config_value
    return env


def render_file(env: jinja2.Environment, device: Device, filename: str, config: Config,
                profile: Profile | None = None) -> str | None:
    """The content of ``filename`` for ``device``, or None if its vendor has no such file."""
    vendor = get_vendor(device.vendor)
    spec = vendor.filenames(device.mac, device.model).get(filename)
    if spec is None:
        return None
    profile = profile or profile_for(device, config)
    return env.get_template(spec.template).render(profile=profile, vendor=vendor)


def render_device(env: jinja2.Environment, device: Device,
                  config: Config) -> dict[str, str]:
    """Every file the device's vendor requests, rendered for its current profile."""
    profile = profile_for(device, config)
    vendor = get_vendor(device.vendor)
    return {name: env.get_template(spec.template).render(profile=profile, vendor=vendor)
            for name, spec in vendor.filenames(device.mac, device.model).items()}
