"""Defence in depth against secrets in logs: a filter every hotdesk log handler carries.

Code must never log a PIN or a SIP password in the first place; this filter is the
second line for the mistakes that slip through: protocol dumps (AMI ``Secret:``, ESL
``auth``), ``key=value`` detail, URLs with credentials, provisioning URLs (the token is
the credential), peewee's DEBUG query parameters (they carry every inserted column),
and the literal secrets of the running configuration.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

MASK = "***"

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # password=…, sip_password: …, vm-password=…, Secret: …, "pin": "…", secret_key=…
    (re.compile(r"(?i)\b((?:[\w-]*password|passwd|[\w-]*secret(?:_key)?|pin|token)"
                r"[\"']?\s*[:=]\s*[\"']?)(?!\*\*\*)([^\s\"',;&}\\]+)"), r"\1" + MASK),
    # ESL: "auth ClueCon" at the start of a line or of a quoted/escaped protocol dump.
    (re.compile(r"(?i)((?:^|[\"'\n]|\\n|\\r)auth\s+)(?!\*\*\*)([^\s\"'\\]+)", re.M),
     r"\1" + MASK),
    # scheme://user:password@host
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)([^@\s/]+)@"), r"\1" + MASK + "@"),
    # /prov/<device token>/file: the token alone lets anyone fetch the phone's passwords.
    (re.compile(r"(/prov/)([A-Za-z0-9_-]{16,})(/)"), r"\1" + MASK + r"\3"),
]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret pattern and every literal in ``secrets`` masked."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class RedactFilter(logging.Filter):
    """Rewrites each record's message (and traceback) with :func:`redact` before output."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("peewee") and isinstance(record.msg, tuple):
            # (sql, params): the parameters are the row's values, passwords included.
            sql, params = (record.msg + ((),))[:2]
            record.msg = f"{sql} [{len(params or ())} parameters not logged]"
            record.args = None
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string must not kill logging
            message = f"{record.msg!r} % {record.args!r}"
        record.msg = redact(message, self.secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secrets)
        return True


def config_secrets(config) -> list[str]:  # type: ignore[no-untyped-def]
    """The literal secrets of a configuration, for :class:`RedactFilter`."""
    from urllib.parse import urlsplit

    values = [config.ami.secret, config.esl.password, config.web.secret_key,
              config.metrics.token, config.switch.directory_password,
              config.emergency.smtp_password]
    try:
        values.append(urlsplit(config.database.url).password or "")
    except ValueError:
        pass
    return [v for v in values if v]
