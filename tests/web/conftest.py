"""Fixtures for the web admin: an app on the test database, two tenants, three admins,
and clients signed in through the real sign-in form (CSRF on, as in production)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hotdesk.admin import admins
from hotdesk.admin.inventory import DeviceSpec, add_device, add_user, default_tenant
from hotdesk.runtime import Runtime
from hotdesk.store.models import Admin, Device, Tenant, User
from webadmin.app import create_app

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def web_runtime(runtime: Runtime, tmp_path: Path) -> Runtime:
    web = dataclasses.replace(runtime.config.web, secret_key_file=str(tmp_path / "secret"))
    return Runtime(config=dataclasses.replace(runtime.config, web=web), db=runtime.db,
                   service=runtime.service)


@pytest.fixture
def app(web_runtime: Runtime) -> Flask:
    app = create_app(web_runtime)
    app.testing = True
    return app


@pytest.fixture
def other_tenant(runtime: Runtime) -> Tenant:
    return Tenant.create(name="Other Corp", sip_domain="other.example")


@pytest.fixture
def sysadmin(runtime: Runtime) -> Admin:
    return admins.create_admin(runtime.db, "root", PASSWORD)


@pytest.fixture
def tenant_admin(runtime: Runtime) -> Admin:
    """Administrator of the default tenant only."""
    return admins.create_admin(runtime.db, "ann", PASSWORD, tenant=default_tenant())


@pytest.fixture
def other_admin(runtime: Runtime, other_tenant: Tenant) -> Admin:
    return admins.create_admin(runtime.db, "olga", PASSWORD, tenant=other_tenant)


def csrf_token(client: FlaskClient, url: str = "/signin") -> str:
    page = client.get(url)
    match = _CSRF.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {url} ({page.status_code})"
    return match.group(1)


def sign_in(client: FlaskClient, username: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    token = csrf_token(client, "/signin")
    return client.post("/signin", data={"username": username, "password": password,
                                        "csrf_token": token})


def client_for(app: Flask, admin: Admin) -> FlaskClient:
    client = app.test_client()
    response = sign_in(client, admin.username)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


@pytest.fixture
def root_client(app: Flask, sysadmin: Admin) -> Iterator[FlaskClient]:
    yield client_for(app, sysadmin)


@pytest.fixture
def ann_client(app: Flask, tenant_admin: Admin) -> Iterator[FlaskClient]:
    yield client_for(app, tenant_admin)


@pytest.fixture
def olga_client(app: Flask, other_admin: Admin) -> Iterator[FlaskClient]:
    yield client_for(app, other_admin)


def other_phone(runtime: Runtime, tenant: Tenant) -> Device:
    return add_device(runtime.db, tenant, DeviceSpec(
        mac="00:15:65:bb:bb:01", extension="9001", sip_password="other-idle",
        name="Other Desk Secret", model="T54W"))


def other_user(runtime: Runtime, tenant: Tenant) -> User:
    return add_user(runtime.db, tenant, "777", name="Otto Othertenant", pin="7777",
                    sip_password="otto-secret", hotdesk=True)


def bearer(runtime: Runtime, admin: Admin) -> dict[str, str]:
    return {"Authorization": f"Bearer {admins.create_token(runtime.db, admin)}"}
