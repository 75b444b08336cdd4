"""Upgrading a database made by the previous schema version (before server-side admin sessions,
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

# The step's number (it changes when branches are merged; its name stays).
STEP = next(n for n, step in enumerate(MIGRATIONS, start=1)
            if step.__name__.endswith("_admin_sessions_tokens_pnp"))
NEW_COLUMNS = ((Admin, "disabled"), (ApiToken, "expires_at"), (Device, "pnp_armed_until"))


def to_previous_version(db) -> None:  # type: ignore[no-untyped-def]
    """Strip what the admin-security step adds, as an install of the version before it
    never had it (later steps are idempotent and simply run again)."""
    db.drop_tables([AdminWebSession, SigninAttempt])
    migrator = SchemaMigrator.from_database(db)
    sqlite = is_sqlite(db)
    if sqlite:  # SQLite drops a column by rebuilding the table: keep dependent rows
        db.execute_sql("PRAGMA foreign_keys = OFF")
    migrate(*[migrator.drop_column(model._meta.table_name, column)
              for model, column in NEW_COLUMNS])
    if sqlite:
        db.execute_sql("PRAGMA foreign_keys = ON")
    SchemaVersion.delete().where(SchemaVersion.version >= STEP).execute()


def test_upgrade_from_the_previous_version_keeps_admins_tokens_and_phones(runtime):
    db = runtime.db
    admin = admins.create_admin(db, "root", "long enough password")
    token = admins.create_token(db, admin, "ci")
    device = make_device(runtime)
    to_previous_version(db)
    assert schema_version(db) == STEP - 1
    assert "disabled" not in {c.name for c in db.get_columns("admin")}

    assert upgrade(db) == len(MIGRATIONS)
    assert {"admin_web_session", "signin_attempt"} <= set(db.get_tables())
    for model, column in NEW_COLUMNS:
        assert column in {c.name for c in db.get_columns(model._meta.table_name)}
    kept = Admin.get_by_id(admin.id)
    assert not kept.disabled and admins.check_password("root", "long enough password")
    assert admins.admin_for_token(token).id == admin.id  # no expiry: keeps working
    assert ApiToken.get().expires_at is None
    assert Device.get_by_id(device.id).pnp_armed_until is None
    assert upgrade(db) == len(MIGRATIONS)  # idempotent
