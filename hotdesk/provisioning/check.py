"""``hotdesk provision check MAC``: what a phone will do with its current config, in plain
words, so an admin sees a problem before walking to the desk."""

from __future__ import annotations

from hotdesk.provisioning.render import Profile, offset_text, profile_for
from hotdesk.provisioning.vendors import get_vendor
from hotdesk.settings import Config
from hotdesk.store.models import Device


def _duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min"


def _rule_text(p: Profile) -> str:
    assert p.dst is not None
    start, end = p.dst.start, p.dst.end
    assert start is not None and end is not None
    return (f"standard UTC{offset_text(p.dst.std_offset_minutes)}, +{p.dst.save_minutes} min "
            f"from month {start.month} week {start.week} day {start.weekday} {start.hour}:00 "
            f"to month {end.month} week {end.week} day {end.weekday} {end.hour}:00")


def describe(device: Device, config: Config) -> list[str]:
    """Sentences, one per line: account, server, transport, clock, keys, re-sync, warnings."""
    vendor = get_vendor(device.vendor)
    match = vendor.family_for(device.model)
    p: Profile = profile_for(device, config)
    who = "its idle account" if p.idle else f"user {p.extension}'s account"
    lines = [
        f"{vendor.label} {device.model or '(no model)'}: {match.family.label} config.",
        f"Registers {who}: user {p.sip_username}, auth user {p.auth_username}, "
        f"{'a password' if p.sip_password else 'NO password'}, label \"{p.label}\".",
        f"Server {p.registrar_host}:{p.registrar_port}"
        + (f" through the SBC {p.outbound_proxy_host}:{p.outbound_proxy_port}"
           if p.outbound_proxy_host else "") + ".",
    ]
    not_set = " (not set: no parameter known for this vendor)"
    lines.append(f"Transport {p.transport.upper()}; SRTP {p.srtp}"
                 + (not_set if "srtp" in vendor.unsupported and p.srtp != "off" else "") + ".")
    if p.follows_dst and p.dst is not None and not p.dst.has_dst:
        lines.append(f"Clock: {p.timezone}, UTC{offset_text(p.utc_offset_minutes)}; the "
                     "zone has no DST and the phone's own DST is off.")
    elif p.follows_dst:
        rule = p.posix_tz or _rule_text(p)
        lines.append(f"Clock: {p.timezone}, {rule} (the phone follows DST itself).")
    else:
        own = ("its own DST rule may still apply (no parameter known to switch it off)"
               if "dst_off" in vendor.unsupported else "the phone's own DST off")
        lines.append(f"Clock: {p.timezone}, today UTC{offset_text(p.utc_offset_minutes)} "
                     f"with {own}; hotdesk re-provisions it at each DST change.")
    keys = ", ".join(f"{k['label'] or '(no label)'} -> {k['value']}" for k in p.keys)
    lines.append(f"Keys: {keys or 'none'}; every other key slot is cleared.")
    if "resync" in vendor.unsupported:
        lines.append(f"Fetches {p.provisioning_url} on check-sync and at boot only (no "
                     "periodic re-sync parameter known for this vendor).")
    elif p.resync_seconds:
        lines.append(f"Fetches {p.provisioning_url} on check-sync and about every "
                     f"{_duration(p.resync_seconds)} on its own.")
    else:
        lines.append(f"Fetches {p.provisioning_url} on check-sync only "
                     "([provisioning] resync_minutes = 0).")
    if device.fetched_version < device.config_version:
        lines.append(f"Not fetched yet: the phone has config v{device.fetched_version}, "
                     f"current is v{device.config_version}.")
    if match.warning:
        lines.append(f"Warning: {match.warning}.")
    return lines
