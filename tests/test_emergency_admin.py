"""Desk locations through the CLI and CSV import, device changes reaching the switch's
entries, and the schema upgrade that adds the emergency tables."""

from __future__ import annotations

import json

from hotdesk.admin.inventory import default_tenant, delete_device
from hotdesk.emergency import location_import, locations, notices
from hotdesk.emergency.models import EmergencyCallSeen, EmergencyLocation, EmergencySync
from hotdesk.runtime import start
from hotdesk.store.db import MIGRATIONS, _v9_emergency, schema_version, upgrade
from hotdesk.store.models import AuditEvent, SchemaVersion
from hotdesk.switch import emergency
from tests.emergency_helpers import DESK_3, set_location
from tests.test_cli import hotdesk
from tests.test_emergency_core import Recorder


def test_cli_sets_changes_and_clears_a_desk_location(database_url):
    hotdesk(database_url, "db", "upgrade")
    hotdesk(database_url, "device", "add", "--mac", "00:15:65:12:34:AB", "--extension", "8001",
            "--sip-password", "S3cret8001", "--name", "Desk 3.01")
    out = hotdesk(database_url, "device", "set-location", "0015.6512.34ab", "--country", "us",
                  "--city", "Springfield", "--street", "Main St", "--number", "1",
                  "--floor", "3", "--room", "3.01", "--callback", "+1 555 0100").stdout
    assert out.strip() == ("00:15:65:12:34:AB: 1 Main St, Springfield, US; floor 3, room 3.01; "
                           "callback +15550100")
    out = hotdesk(database_url, "device", "set-location", "00:15:65:12:34:ab", "--room",
                  "3.02").stdout
    assert "floor 3, room 3.02" in out and "Main St" in out  # other fields kept
    bad = hotdesk(database_url, "device", "set-location", "00:15:65:12:34:ab", "--callback",
                  "call me", check=False)
    assert bad.returncode == 1 and "callback" in bad.stderr
    assert "room 3.02" in hotdesk(database_url, "device", "set-location", "00:15:65:12:34:ab",
                                  "--floor", "3").stdout  # the refused edit changed nothing
    hotdesk(database_url, "device", "set-location", "00:15:65:12:34:ab", "--clear")
    out = hotdesk(database_url, "emergency", "default", "--country", "US", "--city",
                  "Springfield").stdout
    assert out.strip() == "tenant default: Springfield, US"
    assert "entries queued" in hotdesk(database_url, "emergency", "resync").stdout


def test_csv_import_sets_good_rows_and_names_the_bad_ones(runtime, desk, desk2):
    text = ("MAC,floor,room,callback\n"
            "00:15:65:12:34:ab,3,3.01,+15550100\n"
            "00:15:65:00:00:99,1,1.01,\n"
            "not-a-mac,1,1,\n"
            "00:15:65:00:00:02,2,\"a/b\",\n")
    result = location_import.import_csv(runtime.db, None, text, actor="admin:test")
    assert result.done == [desk.mac]
    assert [line for line, _ in result.problems] == [3, 4, 5]
    assert "no hot-desking phone" in result.problems[0][1]
    assert locations.desk_location(desk.id).room == "3.01"
    assert locations.desk_location(desk2.id) is None
    assert EmergencySync.get(EmergencySync.endpoint == desk.idle_sip_username).pending


def test_csv_without_a_mac_header_is_refused_whole(runtime, desk):
    result = location_import.import_csv(runtime.db, None, "00:15:65:12:34:ab,3\n")
    assert result.done == [] and "header row" in result.problems[0][1]
    result = location_import.import_csv(runtime.db, None, "mac,planet\n00:15:65:12:34:ab,x\n")
    assert "unknown: planet" in result.problems[0][1]


def test_removing_a_desk_removes_its_entry_from_the_switch(runtime, alice, desk):
    set_location(runtime.db, desk, DESK_3)
    switch = Recorder()
    emergency.drain_once(switch)
    assert desk.idle_sip_username in switch.store
    delete_device(runtime.db, runtime.service, desk, actor="admin:test")
    emergency.drain_once(switch)
    assert switch.store == {}
    assert not EmergencyLocation.select().exists()


def test_an_emergency_call_is_audited_even_with_no_point_configured(runtime, alice, desk):
    set_location(runtime.db, desk, DESK_3)
    call = notices.SeenCall(switch="asterisk", call_id="x1", endpoint="8001", number="112",
                            caller_id="8001")
    assert notices.handle(call, runtime.config.emergency) == []
    row = AuditEvent.get(AuditEvent.action == "emergency_call")
    notice = json.loads(row.detail)["notice"]
    assert (notice["extension"], notice["desk"], notice["callback"]) == \
        ("8001", "Desk 8001", "+15550100")
    assert notices.recent(5)[0]["number"] == "112"


def test_upgrade_from_the_previous_schema_adds_the_emergency_tables_and_keeps_data(config):
    rt = start(config, migrate=True)
    tenant = default_tenant()
    # The schema version just before this migration, wherever a merge puts it.
    previous = MIGRATIONS.index(_v9_emergency)
    rt.db.drop_tables([EmergencyCallSeen, EmergencySync, EmergencyLocation])
    SchemaVersion.delete().where(SchemaVersion.version > previous).execute()
    assert schema_version(rt.db) == previous
    assert upgrade(rt.db) == len(MIGRATIONS)
    assert default_tenant().id == tenant.id
    set_location(rt.db, None, {"country": "US"})
    assert locations.tenant_location(tenant.id).country == "US"
    rt.db.close()


def test_a_call_seen_by_several_workers_is_notified_once(runtime, alice, desk):
    call = notices.SeenCall(switch="asterisk", call_id="dup-1", endpoint="8001", number="911")
    notices.handle(call, runtime.config.emergency)
    notices.handle(call, runtime.config.emergency)
    assert AuditEvent.select().where(AuditEvent.action == "emergency_call").count() == 1


def test_the_email_notice_goes_through_a_real_smtp_session(runtime, alice, desk):
    """stdlib smtpd (Python 3.11) as the mail server: the message the guard desk gets."""
    import dataclasses
    import email
    import email.policy
    import threading
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncore = __import__("asyncore")
        smtpd = __import__("smtpd")
    received: list[tuple[str, list[str], str]] = []

    class Server(smtpd.SMTPServer):
        def process_message(self, peer, mailfrom, rcpttos, data, **kw):  # noqa: ANN001
            received.append((mailfrom, rcpttos, data.decode()))

    server = Server(("127.0.0.1", 0), None, decode_data=False)
    port = server.socket.getsockname()[1]
    loop = threading.Thread(target=asyncore.loop, kwargs={"timeout": 0.05, "count": 200},
                            daemon=True)
    loop.start()
    set_location(runtime.db, desk, DESK_3)
    config = dataclasses.replace(runtime.config.emergency, smtp_host="127.0.0.1",
                                 smtp_port=port, mail_to="guard@example.com, desk@example.com",
                                 mail_from="pbx@example.com")
    threads = notices.handle(notices.SeenCall(switch="asterisk", call_id="m1",
                                              endpoint="8001", number="911"), config)
    for thread in threads:
        thread.join(10)
    server.close()
    [(sender, rcpts, data)] = received
    assert sender == "pbx@example.com" and rcpts == ["guard@example.com", "desk@example.com"]
    message = email.message_from_string(data, policy=email.policy.default)
    assert message["Subject"] == "EMERGENCY CALL to 911 from 8001 at Desk 8001"
    body = message.get_content()
    assert "Callback number: +15550100" in body
    assert "Location:        1 Main St, Springfield, CA, US; building A, floor 3, room 3.01" \
        in body


def test_the_smtp_password_is_a_secret_the_logs_never_show(config):
    import dataclasses

    from hotdesk.redact import config_secrets

    cfg = dataclasses.replace(config, emergency=dataclasses.replace(
        config.emergency, smtp_password="mail-s3cret"))
    assert "mail-s3cret" in config_secrets(cfg)
