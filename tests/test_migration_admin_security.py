"""Upgrading a database made by schema version 3 (before server-side admin sessions,
the shared sign-in throttle, token expiry, disabled admins and the PnP window): data
and behaviour are kept, on SQLite and PostgreSQL."""

from __future__ import annotations

from playhouse.migrate import SchemaMigrator, migrate

from hotdesk.admin import admins
from hotdesk.store.db import MIGRATIONS, is_sqlite, schema_version, upgrade
from hotdesk.store.models import (
    Admin,
    AdminWebSession,
    ApiToken,
    Device,
    SchemaVersion,
    SigninAttempt,
)
from tests.conftest import make_device

V4_COLUMNS = ((Admin, "disabled"), (ApiToken, "expires_at"), (Device, "pnp_armed_until"))


def to_version_3(db) -> None:  # type: ignore[no-untyped-def]
    """Strip what the version-4 step adds, as a version-3 install never had it."""
    db.drop_tables([AdminWebSession, SigninAttempt])
    migrator = SchemaMigrator.from_database(db)
    sqlite = is_sqlite(db)
    if sqlite:  # SQLite drops a column by rebuilding the table: keep dependent rows
        db.execute_sql("PRAGMA foreign_keys = OFF")
    migrate(*[migrator.drop_column(model._meta.table_name, column)
              for model, column in V4_COLUMNS])
    if sqlite:
        db.execute_sql("PRAGMA foreign_keys = ON")
    SchemaVersion.delete().where(SchemaVersion.version > 3).execute()


def test_upgrade_from_version_3_keeps_admins_tokens_and_phones(runtime):
    db = runtime.db
    admin = admins.create_admin(db, "root", "long enough password")
    token = admins.create_token(db, admin, "ci")
    device = make_device(runtime)
    to_version_3(db)
    assert schema_version(db) == 3
    assert "disabled" not in {c.name for c in db.get_columns("admin")}

    assert upgrade(db) == len(MIGRATIONS)
    assert {"admin_web_session", "signin_attempt"} <= set(db.get_tables())
    for model, column in V4_COLUMNS:
        assert column in {c.name for c in db.get_columns(model._meta.table_name)}
    kept = Admin.get_by_id(admin.id)
    assert not kept.disabled and admins.check_password("root", "long enough password")
    assert admins.admin_for_token(token).id == admin.id  # no expiry: keeps working
    assert ApiToken.get().expires_at is None
    assert Device.get_by_id(device.id).pnp_armed_until is None
    assert upgrade(db) == len(MIGRATIONS)  # idempotent
