"""``hotdesk db upgrade`` from a database made by the previous schema version keeps its data
and its behaviour (SQLite here; PostgreSQL when HOTDESK_TEST_DATABASE_URL is set)."""

from __future__ import annotations

from playhouse.migrate import SchemaMigrator, migrate

from hotdesk.admin.inventory import DeviceSpec, add_device, add_user, default_tenant
from hotdesk.calls.service import CallContext, Outcome
from hotdesk.runtime import start
from hotdesk.store.db import MIGRATIONS, schema_version, upgrade
from hotdesk.store.models import Device, SchemaVersion, Tenant, User


def as_version_2(db) -> None:  # type: ignore[no-untyped-def]
    """Turn a fresh database into what schema version 2 shipped: no tenant.pin_source."""
    migrate(SchemaMigrator.from_database(db).drop_column("tenant", "pin_source"))
    SchemaVersion.delete().where(SchemaVersion.version > 2).execute()


def test_v3_keeps_hotdesk_pins_for_tenants_that_had_them(config):
    rt = start(config, migrate=True)
    tenant = default_tenant()
    empty = Tenant.create(name="Empty", sip_domain="empty.example")
    add_user(rt.db, tenant, "101", name="Alice", pin="1234", hotdesk=True)
    add_device(rt.db, tenant, DeviceSpec(mac="00:15:65:12:34:ab", extension="8001",
                                         sip_password="idle"))
    as_version_2(rt.db)
    assert schema_version(rt.db) == 2
    assert upgrade(rt.db) == len(MIGRATIONS)
    # Nothing lost: adding a column never rebuilds a table (which would cascade).
    assert User.select().count() == 1 and Device.select().count() == 1
    # Users with hotdesk PINs keep logging in with them, without a config change...
    assert Tenant.get_by_id(tenant.id).pin_source == "hotdesk"
    ctx = CallContext(switch="asterisk", call_id="u1", endpoint="8001", source="192.0.2.1:5060")
    phone = rt.service.identify_phone(ctx)
    caller = rt.service.check_caller(phone, "101")
    assert caller.pin_on_switch is False
    assert rt.service.login(phone.id, "101", "1234", ctx).outcome is Outcome.LOGGED_IN
    # ... while a tenant without users follows the new default (the voicemail PIN).
    assert not Tenant.get_by_id(empty.id).pin_source  # NULL: the config decides
    assert rt.service.pin_on_switch(Tenant.get_by_id(empty.id)) is True
    rt.db.close()


def test_upgrading_twice_changes_nothing(config):
    rt = start(config, migrate=True)
    version = schema_version(rt.db)
    assert upgrade(rt.db) == version
    assert [c.name for c in rt.db.get_columns("tenant")].count("pin_source") == 1
    rt.db.close()
