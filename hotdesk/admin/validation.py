"""Field rules for users and phones, once for the CLI, the web pages, the API and imports:
the same limits and the same messages whichever front end the value came through."""

from __future__ import annotations

import re

from hotdesk.admin.errors import InventoryError

NAME_MAX = 100
MODEL_MAX = 64
SIP_PASSWORD_MAX = 128
LANGUAGE_MAX = 10

_EXTENSION = re.compile(r"[0-9]{1,15}")
_SIP_USER = re.compile(r"[A-Za-z0-9_.+\-]{1,64}")
# Printable ASCII without spaces, quotes or backslash: every vendor's config format
# (INI-like, XML, Cisco's XML attributes) carries it without quoting rules.
_SIP_PASSWORD = re.compile(r"[!#-&(-\[\]-_a-~]{1," + str(SIP_PASSWORD_MAX) + "}")
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,4})?")


def _no_control(value: str, field: str) -> None:
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in value):
        raise InventoryError(f"{field} must not contain control characters (newline, tab, NUL)")


def text(value: str | None, field: str, limit: int) -> str:
    """A free-text field (display name, model): trimmed, one line, at most ``limit``."""
    value = (value or "").strip()
    _no_control(value, field)
    if len(value) > limit:
        raise InventoryError(f"{field} must be at most {limit} characters")
    return value


def name(value: str | None) -> str:
    return text(value, "name", NAME_MAX)


def extension(value: str | None, field: str = "extension") -> str:
    value = (value or "").strip()
    if not _EXTENSION.fullmatch(value):
        raise InventoryError(f"{field} {value[:20]!r} must be 1 to 15 digits")
    return value


def sip_username(value: str | None) -> str:
    if not _SIP_USER.fullmatch(value or ""):  # match() lets "$" accept a trailing newline
        raise InventoryError(f"SIP username {(value or '')[:70]!r} may use letters, digits "
                             "and _ . + - (at most 64)")
    return value or ""


def sip_password(value: str | None, required: bool = False) -> str:
    """"" is allowed (no password yet) unless ``required``."""
    value = value or ""
    if not value:
        if required:
            raise InventoryError("the idle extension needs a SIP password")
        return value
    if not _SIP_PASSWORD.fullmatch(value):
        raise InventoryError(f"SIP password must be 1 to {SIP_PASSWORD_MAX} printable ASCII "
                             "characters without spaces, quotes or backslash")
    return value


def language(value: str | None) -> str:
    value = (value or "").strip() or "en"
    if len(value) > LANGUAGE_MAX or not _LANGUAGE.fullmatch(value):
        raise InventoryError("language must be a code such as en, de or pt_BR")
    return value
