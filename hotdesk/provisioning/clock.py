"""A phone's clock: which time zone it shows, and how each vendor is told.

The zone is a name (``Europe/Berlin``): the logged-in user's, else the tenant's, else
``[provisioning] timezone``. Vendors that take a POSIX rule (Grandstream) get the zone's
rule and switch to and from DST themselves. The others get today's UTC offset with their
own DST rule switched off (their built-in rules are not the zone's), so the worker
re-provisions them at each DST change of their zone: :func:`dst_changes` finds those
phones from the offset their config last carried (``Device.clock_state``).
"""

from __future__ import annotations

import functools
import logging
import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

_POSIX = re.compile(
    r"(?P<std><[^>]+>|[A-Za-z]{3,})(?P<stdoff>[+-]?\d{1,2}(?::\d{2}){0,2})"
    r"(?:(?P<dst><[^>]+>|[A-Za-z]{3,})(?P<dstoff>[+-]?\d{1,2}(?::\d{2}){0,2})?"
    r"(?:,(?P<start>[^,/]+)(?:/(?P<start_t>[+-]?[\d:]+))?"
    r",(?P<end>[^,/]+)(?:/(?P<end_t>[+-]?[\d:]+))?)?)?")


def zone_name(*candidates: str) -> str:
    """The first non-empty name that is a known IANA zone; "UTC" when none is."""
    for name in candidates:
        if not name:
            continue
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            log.warning("time zone %r is unknown; using the next one configured", name)
            continue
        return name
    return "UTC"


def utc_offset_minutes(tz_name: str, now: datetime | None = None) -> int:
    """The zone's offset from UTC at ``now`` (DST included), in minutes."""
    try:
        zone = zoneinfo.ZoneInfo(tz_name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        log.warning("time zone %r is unknown; phones get UTC", tz_name)
        return 0
    moment = now or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    offset = moment.astimezone(zone).utcoffset()
    return int(offset.total_seconds() // 60) if offset else 0


@functools.lru_cache(maxsize=1024)
def _tzif_footer(tz_name: str) -> str:
    """The POSIX TZ string at the end of the zone's TZif file (RFC 8536, section 3.3).

    Cached: every render and every worker tick asks, and the file changes only with a
    tzdata upgrade (a restart picks that up)."""
    for root in zoneinfo.TZPATH:
        path = Path(root) / tz_name
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if data[:4] == b"TZif" and data.endswith(b"\n"):
            return data[data.rindex(b"\n", 0, len(data) - 1) + 1:-1].decode("ascii")
    return ""


def _hms(value: str | None, default: str = "02:00:00") -> str:
    if not value:
        return default
    sign = value[0] if value[0] in "+-" else ""
    parts = [int(p) for p in value.lstrip("+-").split(":")] + [0, 0]
    return f"{sign}{parts[0]:02d}:{parts[1]:02d}:{parts[2]:02d}"


def _shift_hours(offset: str, hours: int) -> str:
    sign = -1 if offset.startswith("-") else 1
    parts = [int(p) for p in offset.lstrip("+-").split(":")] + [0, 0]
    total = sign * (parts[0] * 3600 + parts[1] * 60 + parts[2]) + hours * 3600
    hh, rest = divmod(abs(total), 3600)
    mm = rest // 60
    return ("-" if total < 0 else "") + (f"{hh}:{mm:02d}" if mm else f"{hh}")


@functools.lru_cache(maxsize=1024)
def posix_rule(tz_name: str) -> str:
    """The zone's POSIX TZ rule with every field spelled out, e.g.
    ``CET-1CEST-2,M3.5.0/02:00:00,M10.5.0/03:00:00`` for Europe/Berlin; ``""`` when the
    zone file carries none (then callers fall back to the fixed offset)."""
    footer = _tzif_footer(tz_name)
    m = _POSIX.fullmatch(footer) if footer else None
    if m is None:
        return ""
    if not m["dst"]:
        return f"{m['std']}{m['stdoff']}"
    if not m["start"]:
        return ""
    dstoff = m["dstoff"] or _shift_hours(m["stdoff"], -1)
    return (f"{m['std']}{m['stdoff']}{m['dst']}{dstoff},{m['start']}/{_hms(m['start_t'])},"
            f"{m['end']}/{_hms(m['end_t'])}")


@dataclass(frozen=True)
class Change:
    """A DST change in "Mm.w.d/h" form: month, week (5 = last), weekday (0 = Sunday),
    local hour."""

    month: int
    week: int
    weekday: int
    hour: int


@dataclass(frozen=True)
class DstRule:
    """A zone's rule in the terms desk phones take: the standard UTC offset and, when the
    zone has DST, how much it adds and when it starts and ends."""

    std_offset_minutes: int
    save_minutes: int = 0
    start: Change | None = None
    end: Change | None = None

    @property
    def has_dst(self) -> bool:
        return self.start is not None


def _minutes(posix_offset: str) -> int:
    """POSIX offsets count west of Greenwich: "-1" is UTC+1."""
    sign = 1 if posix_offset.startswith("-") else -1
    parts = [int(p) for p in posix_offset.lstrip("+-").split(":")] + [0, 0]
    return sign * (parts[0] * 60 + parts[1])


def _change(rule: str, time: str | None) -> Change | None:
    m = re.fullmatch(r"M(\d{1,2})\.([1-5])\.([0-6])", rule)
    hms = _hms(time).split(":")
    if m is None or hms[0].startswith(("-", "+")) or hms[1:] != ["00", "00"]:
        return None
    hour = int(hms[0])
    if hour > 23:
        return None
    return Change(int(m[1]), int(m[2]), int(m[3]), hour)


@functools.lru_cache(maxsize=1024)
def dst_rule(tz_name: str) -> DstRule | None:
    """The zone's rule as month/week/weekday/hour changes, or None when its POSIX rule
    uses a form desk phones cannot take (Julian days, minutes, hours beyond 0-23)."""
    footer = _tzif_footer(tz_name)
    m = _POSIX.fullmatch(footer) if footer else None
    if m is None:
        return None
    std = _minutes(m["stdoff"])
    if not m["dst"]:
        return DstRule(std)
    if not m["start"]:
        return None
    save = (_minutes(m["dstoff"]) - std) if m["dstoff"] else 60
    start, end = _change(m["start"], m["start_t"]), _change(m["end"], m["end_t"])
    if start is None or end is None or save <= 0:
        return None
    return DstRule(std, save, start, end)


# How a vendor can be told a zone's DST (Vendor.dst): "posix" a POSIX TZ rule, "rule" a
# month/week/weekday/hour rule with any DST amount, "rule-1h" the same with a fixed one
# hour, "" not at all (fixed offset, re-provisioned at each DST change).
def follows(dst_mode: str, tz_name: str) -> bool:
    """True when a phone of this DST mode switches to and from DST itself in this zone."""
    if dst_mode == "posix":
        return bool(posix_rule(tz_name))
    if dst_mode in ("rule", "rule-1h"):
        rule = dst_rule(tz_name)
        return rule is not None and (dst_mode == "rule" or rule.save_minutes in (0, 60))
    return False


def clock_state(zone: str, offset_minutes: int) -> str:
    """What ``Device.clock_state`` records: the zone and the offset the config carried."""
    return f"{zone}|{offset_minutes}"


def dst_changed(previous: str, zone: str, offset_minutes: int) -> bool:
    """True when the phone's config carried another offset *of the same zone*: a DST
    change, not a log in or out (those re-provision the phone themselves)."""
    old_zone, _, old_offset = previous.partition("|")
    return old_zone == zone and old_offset != str(offset_minutes)
