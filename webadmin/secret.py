"""The Flask secret key: from ``[web] secret_key``, else generated once and kept in a file,
so admin sessions survive a restart and every process of one install shares it."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from hotdesk.settings import Config

FILE_NAME = "hotdesk-web.secret"


def secret_key_path(config: Config) -> Path:
    if config.web.secret_key_file:
        return Path(config.web.secret_key_file)
    url = config.database.url
    if url.startswith("sqlite:///") and not url.endswith(":memory:"):
        return Path(url.removeprefix("sqlite:///")).resolve().parent / FILE_NAME
    return Path.cwd() / FILE_NAME


def load_secret_key(config: Config) -> str:
    """The configured key, or the persisted one, creating it (mode 0600) on first run."""
    if config.web.secret_key:
        return config.web.secret_key
    path = secret_key_path(config)
    try:
        existing = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        existing = ""
    if len(existing) >= 32:
        return existing
    key = secrets.token_hex(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race: use its key
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key + "\n")
    return key
