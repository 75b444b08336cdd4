"""Schema v3 (idle accounts on the switch) upgrades a v2 database and keeps its data:
existing phones keep their stored passwords and are not managed by hotdesk."""

from __future__ import annotations

from hotdesk.admin.inventory import DeviceSpec, add_device, add_user, default_tenant
from hotdesk.store.db import MIGRATIONS, _v4_switch_accounts, open_database, schema_version, upgrade
from hotdesk.store.models import Device, SchemaVersion, SwitchSync, User
from hotdesk.switch import idle_accounts

# The schema version just before the switch-accounts step (its number may change when
# other steps are merged before it).
BEFORE = MIGRATIONS.index(_v4_switch_accounts)


def make_v2_database(url: str) -> None:
    """A database as the previous schema version left it: no Device.idle_managed /
    account_fingerprint, no switch_sync table; one user and one phone in it."""
    db = open_database(url)
    upgrade(db)
    add_user(db, default_tenant(), "101", name="Alice", pin="1234", sip_password="s101",
             hotdesk=True)
    add_device(db, default_tenant(), DeviceSpec(mac="001565000001", extension="8001",
                                                sip_password="idle-8001"))
    db.execute_sql("ALTER TABLE device DROP COLUMN idle_managed")
    db.execute_sql("ALTER TABLE device DROP COLUMN account_fingerprint")
    db.drop_tables([SwitchSync])
    SchemaVersion.delete().where(SchemaVersion.version > BEFORE).execute()
    assert schema_version(db) == BEFORE
    db.close()


def test_v2_database_upgrades_and_keeps_working(database_url, config):
    make_v2_database(database_url)
    db = open_database(database_url)
    assert upgrade(db) == len(MIGRATIONS)
    columns = {c.name for c in db.get_columns("device")}
    assert {"idle_managed", "account_fingerprint"} <= columns
    device = Device.get(Device.mac == "001565000001")
    assert (device.idle_sip_password, device.idle_managed, device.account_fingerprint) == \
        ("idle-8001", False, "")
    assert User.get(User.extension == "101").sip_password == "s101"
    assert not idle_accounts.state().pending
    # the upgraded schema takes the new kind of phone
    spec = idle_accounts.prepare(DeviceSpec(mac="001565000002", extension="8002",
                                            sip_password=""), config)
    assert not spec.idle_managed  # no [switch] accounts_file: nothing to create
    db.close()
