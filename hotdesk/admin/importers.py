"""Importing users from an existing PBX: Asterisk pjsip.conf + voicemail.conf, a FreeSWITCH
directory, or CSV.

The parsers are pure functions from text to records plus per-line problems: they never
raise on bad input, so one broken line costs that line and nothing else. Applying the
records goes through :mod:`hotdesk.admin.inventory`, one transaction per user.
"""

from __future__ import annotations

import csv
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from peewee import Database

from hotdesk.admin import inventory
from hotdesk.hashing import InvalidPin, validate_pin
from hotdesk.store.models import Tenant, User

_EXTENSION = re.compile(r"^[0-9]{1,15}$")
_CALLERID = re.compile(r'^\s*"?([^"<]*)"?\s*(?:<([^>]*)>)?\s*$')
_SECTION = re.compile(r"^\[([^\]]+)\]\s*(?:\(([^)]*)\))?\s*$")
MAX_INPUT_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class ImportRecord:
    """One user as found in the source; None = the source does not say."""

    extension: str
    line: int = 0
    name: str = ""
    pin: str | None = None
    sip_password: str = ""
    sip_username: str = ""
    hotdesk: bool | None = None


@dataclass(frozen=True)
class Problem:
    line: int
    message: str


@dataclass
class ParseResult:
    records: list[ImportRecord] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


@dataclass
class ImportSummary:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (what, why)


def _lines(text: str) -> Iterable[tuple[int, str]]:
    for number, raw in enumerate(text.splitlines(), start=1):
        yield number, raw.split(";", 1)[0].strip()


def _too_big(text: str) -> ParseResult | None:
    if len(text) > MAX_INPUT_BYTES:
        return ParseResult(problems=[Problem(0, "file is larger than 5 MB")])
    return None


def parse_ini_sections(text: str) -> tuple[list[tuple[str, dict]], list[Problem]]:
    """Asterisk config -> [(section name, {"line", "template", "inherits", "options"})].

    Names repeat in pjsip.conf (endpoint 101 and aor 101), so this is a list.
    ``[name](!)`` is a template, ``[name](tpl,other)`` inherits them in order,
    ``[name](!,tpl)`` is a template that inherits, ``[name](+)`` adds to the last one.
    """
    sections: list[tuple[str, dict]] = []
    problems: list[Problem] = []
    current: dict | None = None
    for number, line in _lines(text):
        if not line:
            continue
        match = _SECTION.match(line)
        if match:
            name = match.group(1).strip()
            flags = [f.strip() for f in (match.group(2) or "").split(",") if f.strip()]
            previous = [sec for n, sec in sections if n == name]
            if "+" in flags and previous:
                current = previous[-1]
                continue
            current = {"line": number, "template": "!" in flags,
                       "inherits": [f for f in flags if f not in ("!", "+")],
                       "options": {}}
            sections.append((name, current))
            continue
        key, sep, value = line.partition("=")
        if not sep or current is None:
            problems.append(Problem(number, f"not a 'key = value' line inside a section: "
                                            f"{line[:60]!r}"))
            continue
        current["options"][key.strip().lower()] = value.lstrip(">").strip()
    return sections, problems


def _templates(sections: list[tuple[str, dict]]) -> dict[str, dict]:
    return {name: sec for name, sec in reversed(sections) if sec["template"]}


def _resolved(section: dict, templates: dict[str, dict], depth: int = 0) -> dict[str, str]:
    options: dict[str, str] = {}
    if depth < 10:
        for parent in section["inherits"]:
            if parent in templates:
                options.update(_resolved(templates[parent], templates, depth + 1))
    options.update(section["options"])
    return options


def parse_pjsip(text: str) -> ParseResult:
    """Endpoints of ``pjsip.conf`` with their auth (username, password) and caller id."""
    big = _too_big(text)
    if big:
        return big
    sections, problems = parse_ini_sections(text)
    templates = _templates(sections)
    result = ParseResult(problems=problems)
    resolved = [(name, sec, _resolved(sec, templates)) for name, sec in sections
                if not sec["template"]]
    auths = {name: opts for name, _, opts in reversed(resolved) if opts.get("type") == "auth"}
    for name, section, options in resolved:
        for parent in section["inherits"]:
            if parent not in templates:
                result.problems.append(Problem(section["line"],
                                               f"[{name[:40]}] inherits unknown template "
                                               f"{parent[:40]!r}"))
        if options.get("type") != "endpoint":
            continue
        display, number = "", ""
        if "callerid" in options:
            cid = _CALLERID.match(options["callerid"])
            if cid:
                display, number = cid.group(1).strip(), (cid.group(2) or "").strip()
        extension = name if _EXTENSION.match(name) else number
        if not _EXTENSION.match(extension or ""):
            result.problems.append(Problem(section["line"], f"endpoint [{name[:40]}] has no "
                                           "numeric extension (name or callerid number)"))
            continue
        username, password = name, ""
        auth_name = options.get("auth", "").split(",")[0].strip()
        if auth_name:
            auth = auths.get(auth_name)
            if auth is None:
                result.problems.append(Problem(section["line"], f"endpoint [{name[:40]}] "
                                               f"uses unknown auth [{auth_name[:40]}]"))
            else:
                username = auth.get("username", name) or name
                password = auth.get("password", "")
        result.records.append(ImportRecord(extension=extension, line=section["line"],
                                           name=display[:100], sip_password=password,
                                           sip_username=username))
    return result


def parse_voicemail(text: str) -> dict[str, tuple[int, str, str]]:
    """``voicemail.conf`` mailboxes -> {mailbox: (line, pin, name)}; first context wins."""
    boxes: dict[str, tuple[int, str, str]] = {}
    section = ""
    for number, line in _lines(text[:MAX_INPUT_BYTES]):
        match = _SECTION.match(line)
        if match:
            section = match.group(1).strip().lower()
            continue
        if not line or section in ("general", "zonemessages"):
            continue
        key, sep, value = line.partition("=>")
        if not sep:
            continue
        fields = [f.strip() for f in value.split(",")]
        pin = fields[0].lstrip("-") if fields else ""
        boxes.setdefault(key.strip(), (number, pin, fields[1] if len(fields) > 1 else ""))
    return boxes


def parse_asterisk(pjsip_text: str, voicemail_text: str = "") -> ParseResult:
    """pjsip.conf users, with PIN (and name if pjsip has none) from voicemail.conf."""
    result = parse_pjsip(pjsip_text)
    boxes = parse_voicemail(voicemail_text) if voicemail_text else {}
    merged: list[ImportRecord] = []
    for record in result.records:
        box = boxes.get(record.extension)
        if box is None:
            merged.append(record)
            continue
        line, pin, name = box
        try:
            pin = validate_pin(pin)
        except InvalidPin:
            result.problems.append(Problem(line, f"voicemail.conf mailbox {record.extension}: "
                                                 "PIN is not 4 to 8 digits; imported without PIN"))
            pin = None
        merged.append(replace(record, pin=pin, name=record.name or name[:100]))
    result.records = merged
    return result


def parse_freeswitch(text: str) -> ParseResult:
    """``<user id="101">`` entries of a FreeSWITCH directory (one file or a whole tree)."""
    big = _too_big(text)
    if big:
        return big
    result = ParseResult()
    if "<!ENTITY" in text or "<!DOCTYPE" in text:
        result.problems.append(Problem(0, "XML with DOCTYPE/ENTITY declarations is refused"))
        return result
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        result.problems.append(Problem(exc.position[0], f"not valid XML: {exc}"))
        return result
    for user in root.iter("user"):
        uid = (user.get("id") or "").strip()
        if not _EXTENSION.match(uid):
            result.problems.append(Problem(0, f"user id {uid[:30]!r} is not a numeric "
                                              "extension; skipped"))
            continue
        params = {p.get("name", ""): p.get("value", "") for p in user.iter("param")}
        variables = {v.get("name", ""): v.get("value", "") for v in user.iter("variable")}
        password = params.get("password", "")
        if "${" in password:
            result.problems.append(Problem(0, f"user {uid}: password is the variable "
                                              f"{password[:40]}; imported without SIP password"))
            password = ""
        pin: str | None = params.get("vm-password") or None
        if pin is not None:
            try:
                pin = validate_pin(pin)
            except InvalidPin:
                result.problems.append(Problem(0, f"user {uid}: vm-password is not 4 to 8 "
                                                  "digits; imported without PIN"))
                pin = None
        result.records.append(ImportRecord(
            extension=uid, name=variables.get("effective_caller_id_name", "")[:100],
            pin=pin, sip_password=password, sip_username=uid))
    return result


_TRUE = {"1", "yes", "y", "true", "on"}
_FALSE = {"0", "no", "n", "false", "off", ""}


def decode(data: bytes) -> tuple[str, list[Problem]]:
    """Uploaded bytes -> text, line by line: a line that is not UTF-8 is reported with its
    number and left empty (so later line numbers stay right), never imported as U+FFFD."""
    problems: list[Problem] = []
    lines = data.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    out = []
    for number, raw in enumerate(lines, start=1):
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            problems.append(Problem(number, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at "
                                            f"column {exc.start + 1}); save the file as UTF-8. "
                                            "This line was skipped"))
            out.append("")
    return "\n".join(out), problems


def parse_csv(text: str, problems: list[Problem] | None = None) -> ParseResult:
    """Rows ``extension,name,pin,sip_password,hotdesk``; a header row is optional.

    Each line is one row: a quote left open is that row's problem and cannot swallow
    the rows after it (no field of an import may hold a line break anyway).
    """
    big = _too_big(text)
    if big:
        return big
    result = ParseResult(problems=list(problems or []))
    for number, line in enumerate(text.replace("\x00", "").splitlines(), start=1):
        try:
            row = next(csv.reader([line], strict=True), [])
        except csv.Error:
            result.problems.append(Problem(number, "a quote (\") is opened but not closed "
                                                   "on this line; the row was skipped"))
            continue
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if cells[0].lower() == "extension":
            continue
        cells += [""] * (5 - len(cells))
        extension, name, pin, password, hotdesk = cells[:5]
        if not _EXTENSION.match(extension):
            result.problems.append(Problem(number, f"extension {extension[:20]!r} must be "
                                                   "1 to 15 digits"))
            continue
        if pin:
            try:
                pin = validate_pin(pin)
            except InvalidPin:
                result.problems.append(Problem(number, f"extension {extension}: PIN must "
                                                       "be 4 to 8 digits"))
                continue
        flag = hotdesk.lower()
        if flag not in _TRUE | _FALSE:
            result.problems.append(Problem(number, f"extension {extension}: hotdesk "
                                                   f"{hotdesk[:10]!r} is not yes/no"))
            continue
        result.records.append(ImportRecord(
            extension=extension, line=number, name=name, pin=pin or None,
            sip_password=password, sip_username=extension,
            hotdesk=None if flag == "" else flag in _TRUE))
    result.problems.sort(key=lambda p: p.line)
    return result


def apply_record(db: Database, tenant: Tenant, record: ImportRecord,
                 enable_hotdesk: bool = False, actor: str = "system",
                 change: Callable[..., object] | None = None) -> tuple[str, str]:
    """Create or update one user; returns (``created`` | ``updated`` | ``skipped``, why).

    PINs are hashed by :mod:`hotdesk.admin.inventory`; a record's ``hotdesk`` wins over
    ``enable_hotdesk``, which only applies to users the source says nothing about.
    ``change(user, **fields)`` updates an existing user (default: the stored record only;
    the import jobs pass the use case, so a logged-in user's phone follows the change).
    """
    try:
        existing = User.get_or_none((User.tenant == tenant)
                                    & (User.extension == record.extension))
        if existing is None:
            hotdesk = enable_hotdesk if record.hotdesk is None else record.hotdesk
            inventory.add_user(db, tenant, record.extension, name=record.name,
                               pin=record.pin, sip_password=record.sip_password,
                               hotdesk=hotdesk, sip_username=record.sip_username,
                               actor=actor)
            return "created", ""
        fields = {"name": record.name or None, "sip_password": record.sip_password or None,
                  "hotdesk": record.hotdesk, "pin": record.pin}
        if change is None:
            inventory.update_user(db, existing, actor=actor, **fields)
        else:
            change(existing, **fields)
        return "updated", ""
    except inventory.InventoryError as exc:
        return "skipped", str(exc)


DUPLICATE = "extension appears twice in the file"


def duplicates(records: list[ImportRecord]) -> set[int]:
    """Indexes of records whose extension came earlier in the file (skipped)."""
    seen: set[str] = set()
    out = set()
    for index, record in enumerate(records):
        if record.extension in seen:
            out.add(index)
        seen.add(record.extension)
    return out


def what(record: ImportRecord) -> str:
    return f"{record.extension}" + (f" (line {record.line})" if record.line else "")


def apply_import(db: Database, tenant: Tenant, records: list[ImportRecord],
                 enable_hotdesk: bool = False, actor: str = "system",
                 progress: Callable[[int, int], None] | None = None,
                 store_sip_passwords: bool = True) -> ImportSummary:
    """Create new users, update existing ones (by extension); one transaction each.

    PINs are hashed by :mod:`hotdesk.admin.inventory`; a record's ``hotdesk`` wins over
    ``enable_hotdesk``, which only applies to users the source says nothing about.
    ``store_sip_passwords`` false (``[switch] credentials = switch``): the passwords in
    the source stay on the switch, only the accounts are imported.
    """
    if not store_sip_passwords:
        records = [replace(r, sip_password="") for r in records]
    summary = ImportSummary()
    twice = duplicates(records)
    for done, record in enumerate(records, start=1):
        if done - 1 in twice:
            outcome, why = "skipped", DUPLICATE
        else:
            outcome, why = apply_record(db, tenant, record, enable_hotdesk, actor)
        if outcome == "skipped":
            summary.skipped.append((what(record), why))
        else:
            getattr(summary, outcome).append(record.extension)
        if progress is not None:
            progress(done, len(records))
    return summary


PARSERS: dict[str, str] = {
    "asterisk": "Asterisk pjsip.conf + voicemail.conf",
    "freeswitch": "FreeSWITCH directory XML",
    "csv": "CSV: extension,name,pin,sip_password,hotdesk",
}
