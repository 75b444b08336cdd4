"""MAC addresses: accept every common spelling, store one canonical form."""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s:\-.]")
_HEX12 = re.compile(r"^[0-9a-f]{12}$")


class InvalidMac(ValueError):
    """Not a MAC address; the message quotes the input and says what is expected."""


def normalise_mac(value: str) -> str:
    """``00:15:65:12:34:AB``, ``0015.6512.34ab``, ``00-15-65-12-34-ab`` -> ``0015651234ab``.

    Returns 12 lower-case hex digits. Multicast and all-zero addresses are refused:
    no desk phone has one, so such input is a typo.
    """
    if not isinstance(value, str):
        raise InvalidMac("MAC address must be text")
    raw = value.strip()
    compact = _SEPARATORS.sub("", raw).lower()
    shown = raw if len(raw) <= 40 else raw[:40] + "…"
    if not _HEX12.match(compact):
        raise InvalidMac(
            f"{shown!r} is not a MAC address: expected 12 hex digits such as 00:15:65:12:34:AB"
        )
    if compact == "000000000000" or int(compact[1], 16) & 1:
        raise InvalidMac(f"{shown!r} is a multicast or all-zero address, not a phone's MAC")
    return compact


def format_mac(mac: str, sep: str = ":", upper: bool = True) -> str:
    """Canonical 12-digit form -> ``00:15:65:12:34:AB`` (for people and vendor file names)."""
    text = mac.upper() if upper else mac.lower()
    return sep.join(text[i:i + 2] for i in range(0, 12, 2)) if sep else text
