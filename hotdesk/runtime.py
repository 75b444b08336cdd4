"""Wiring for a hotdesk process: config -> database -> service, passed explicitly to adapters."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TextIO

from peewee import Database

from hotdesk import logctx
from hotdesk.calls.service import HotdeskService
from hotdesk.redact import RedactFilter
from hotdesk.settings import Config
from hotdesk.store.db import MIGRATIONS, open_database, schema_version, upgrade


@dataclass
class Runtime:
    """One process's wiring. ``db`` is the process database the models are bound to
    (:data:`hotdesk.store.models.process_database`), so a process has one Runtime."""

    config: Config
    db: Database
    service: HotdeskService


class SchemaOutOfDate(RuntimeError):
    pass


def start(config: Config, migrate: bool = False) -> Runtime:
    """Open the database (upgrading it when asked) and build the service."""
    db = open_database(config.database.url, config.database.max_connections,
                       config.database.connection_wait_seconds)
    if migrate:
        upgrade(db, config.tenant.default_domain)
    elif schema_version(db) < len(MIGRATIONS):
        raise SchemaOutOfDate(
            f"database {redact_url(config.database.url)} is at schema version "
            f"{schema_version(db)}, this hotdesk needs {len(MIGRATIONS)}: run 'hotdesk db upgrade'"
        )
    return Runtime(config=config, db=db, service=HotdeskService(db, config))


def redact_url(url: str) -> str:
    """Hide the password in a database URL before it reaches a log line."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def setup_logging(level: str = "INFO", secrets: Iterable[str] = (),
                  stream: TextIO | None = None) -> None:
    """One line per event on stderr, each carrying the call id of the flow it belongs to,
    with known secret patterns and the literal ``secrets`` masked."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(logctx.LOG_FORMAT))
    logctx.install(handler)
    handler.addFilter(RedactFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
