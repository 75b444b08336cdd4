"""The phone clock/transport step (time zone per tenant/user, transport and clock state per
phone) upgrades a database of the previous version in place and keeps its rows, on
SQLite and PostgreSQL."""

from __future__ import annotations

from hotdesk.store.db import MIGRATIONS, _v6_phone_clock_transport, upgrade
from hotdesk.store.models import Device, SchemaVersion, Tenant, User
from tests.conftest import make_device

V3 = ((Tenant, "timezone"), (User, "timezone"), (Device, "sip_transport"),
      (Device, "clock_state"))


def test_v2_database_gains_the_v3_columns_and_keeps_its_phones(runtime, alice):
    db = runtime.db
    desk = make_device(runtime, mac="00:15:65:00:0b:01", extension="8301")
    for model, column in V3:  # back to the v2 shape
        db.execute_sql(f'ALTER TABLE "{model._meta.table_name}" DROP COLUMN "{column}"')
    before = MIGRATIONS.index(_v6_phone_clock_transport)  # the version just before it
    SchemaVersion.delete().where(SchemaVersion.version > before).execute()
    assert "sip_transport" not in {c.name for c in db.get_columns("device")}

    assert upgrade(db) == len(MIGRATIONS)
    for model, column in V3:
        assert column in {c.name for c in db.get_columns(model._meta.table_name)}
    kept = Device.get_by_id(desk.id)  # no table rebuild: nothing cascaded away
    assert (kept.mac, kept.sip_transport, kept.clock_state) == ("001565000b01", "", "")
    assert User.get_by_id(alice.id).timezone == ""
