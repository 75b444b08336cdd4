"""Shared fixtures. The database is SQLite in a temp dir, or the PostgreSQL server named by
HOTDESK_TEST_DATABASE_URL (CI runs the whole suite both ways)."""

from __future__ import annotations

import dataclasses
import gzip
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotdesk.admin.inventory import DeviceSpec, add_device, add_user, default_tenant
from hotdesk.emergency.models import EMERGENCY_MODELS
from hotdesk.notify.push_models import PUSH_MODELS
from hotdesk.runtime import Runtime, start
from hotdesk.settings import Config, DatabaseConfig
from hotdesk.store.db import is_pooled, open_database
from hotdesk.store.models import ALL_MODELS, Device, User

REPO = Path(__file__).resolve().parent.parent
CAPTURES = {"asterisk": REPO / "tests" / "fakes" / "asterisk_captures",
            "freeswitch": REPO / "tests" / "fakes" / "freeswitch_captures"}
# Set but empty: built-in defaults, so a ./hotdesk.ini left by scripts/demo in the checkout
# never reaches the commands the tests start.
os.environ.setdefault("HOTDESK_CONFIG", "")


def reference_bytes(name: str) -> bytes:
    """A real switch transcript kept in the repository (``tests/fakes/*_captures``, plain
    or gzip). A missing one fails the test: the captures ship with every clone."""
    folder = CAPTURES[name.split("-", 1)[0]]
    if (folder / name).exists():
        return (folder / name).read_bytes()
    return gzip.decompress((folder / f"{name}.gz").read_bytes())


@pytest.fixture(autouse=True)
def restore_root_logging() -> Iterator[None]:
    """Commands run in-process install their own log handler on the stream of the
    moment; put the root logger back so later tests never write to a closed stream."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    url = os.environ.get("HOTDESK_TEST_DATABASE_URL")
    if url:
        db = open_database(url)
        db.drop_tables(list(reversed(ALL_MODELS + EMERGENCY_MODELS + PUSH_MODELS)), safe=True,
                       cascade=True)
        db.close()
        return url
    return f"sqlite:///{tmp_path / 'hotdesk.db'}"


@pytest.fixture
def config(database_url: str) -> Config:
    # NOTIFYs go out at once in tests; the call grace period has its own test.
    base = Config()
    return dataclasses.replace(base, database=DatabaseConfig(url=database_url),
                               notify=dataclasses.replace(base.notify, call_grace_seconds=0.0))


@pytest.fixture
def runtime(config: Config) -> Iterator[Runtime]:
    rt = start(config, migrate=True)
    yield rt
    rt.db.close()
    if is_pooled(rt.db):
        rt.db.close_all()  # the connections other threads gave back to the pool


@pytest.fixture
def alice(runtime: Runtime) -> User:
    return add_user(runtime.db, default_tenant(), "101", name="Alice", pin="1234",
                    sip_password="alice-secret", hotdesk=True)


@pytest.fixture
def bob(runtime: Runtime) -> User:
    return add_user(runtime.db, default_tenant(), "102", name="Bob", pin="4321",
                    sip_password="bob-secret", hotdesk=True)


def make_device(runtime: Runtime, mac: str = "00:15:65:12:34:ab", extension: str = "8001",
                **kw: str) -> Device:
    spec = DeviceSpec(mac=mac, extension=extension, sip_password=f"idle-{extension}",
                      vendor=kw.pop("vendor", "yealink"), name=kw.pop("name", f"Desk {extension}"),
                      **kw)
    return add_device(runtime.db, default_tenant(), spec)


@pytest.fixture
def desk(runtime: Runtime) -> Device:
    return make_device(runtime)


@pytest.fixture
def desk2(runtime: Runtime) -> Device:
    return make_device(runtime, mac="00:15:65:00:00:02", extension="8002")
