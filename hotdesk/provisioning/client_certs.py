"""Which MAC addresses a phone's TLS client certificate names (mutual TLS provisioning).

Phones of several vendors carry a factory device certificate "unique to a device (based
on the MAC address)" (Poly UC Software admin guide, "Using the Factory-Installed
Certificate"; Yealink admin guides, "unique server certificate"). The vendors place the
MAC in the subject common name or a subjectAltName, spelled in several ways (bare hex,
colons, dashes, dots, or after a prefix such as Cisco's ``SEP``). So every 12-hex-digit
MAC found in the CN or a DNS/URI/IP-free SAN value counts, in any of those spellings;
the file's MAC must be among them. The CA check itself is OpenSSL's (``client_ca``).
"""

from __future__ import annotations

import re
from typing import Any

# Six hex pairs with one consistent separator (or none), not inside a longer hex run.
_MAC = re.compile(
    r"(?<![0-9A-Fa-f])([0-9A-Fa-f]{2})([:\-.]?)([0-9A-Fa-f]{2})\2([0-9A-Fa-f]{2})\2"
    r"([0-9A-Fa-f]{2})\2([0-9A-Fa-f]{2})\2([0-9A-Fa-f]{2})(?![0-9A-Fa-f])")
# Cisco style 0015.65ab.cdef
_MAC_DOTTED = re.compile(
    r"(?<![0-9A-Fa-f])([0-9A-Fa-f]{4})\.([0-9A-Fa-f]{4})\.([0-9A-Fa-f]{4})(?![0-9A-Fa-f])")
_SAN_KINDS = {"DNS", "URI", "email", "othername", "DirName"}


def macs_in_text(text: str) -> set[str]:
    """Every MAC spelled in ``text``, as 12 lower-case hex digits."""
    found = {"".join(m.group(1, 3, 4, 5, 6, 7)).lower() for m in _MAC.finditer(text)}
    found |= {"".join(m.groups()).lower() for m in _MAC_DOTTED.finditer(text)}
    return found


def certificate_macs(peercert: dict[str, Any] | None) -> frozenset[str]:
    """The MACs named by a verified peer certificate (``SSLObject.getpeercert()``)."""
    if not peercert:
        return frozenset()
    texts: list[str] = []
    for rdn in peercert.get("subject", ()):
        for name, value in rdn:
            if name in ("commonName", "serialNumber", "uniqueIdentifier"):
                texts.append(str(value))
    for kind, value in peercert.get("subjectAltName", ()):
        if kind in _SAN_KINDS:
            texts.append(str(value))
    macs: set[str] = set()
    for text in texts:
        macs |= macs_in_text(text)
    return frozenset(macs)
