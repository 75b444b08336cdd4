"""The CLI, the web pages and the REST API make a change through one use-case layer
(hotdesk/admin/usecases.py): same consequences, same refusals, same messages."""

from __future__ import annotations

import dataclasses

import pytest

from hotdesk.calls.service import CallContext, Outcome
from hotdesk.store.models import (
    AuditEvent,
    Device,
    LoginAttempt,
    OutboxNotify,
    Session,
    User,
    process_database,
)
from hotdesk_cli.main import main
from tests.web.conftest import bearer, csrf_token

PHONE = {"vendor": "yealink", "model": "T54W", "sip_password": "idle-pw", "method": "pnp",
         "network": "lan"}


@pytest.fixture
def config(config):  # type: ignore[no-untyped-def]
    """Users' SIP passwords kept by hotdesk ([switch] credentials = hotdesk): what these
    tests change. (credentials = switch refuses them; see the test for that.)"""
    return dataclasses.replace(config, switch=dataclasses.replace(config.switch,
                                                                  credentials="hotdesk"))


@pytest.fixture
def cli(runtime, monkeypatch, capsys):
    """Run ``hotdesk …`` in-process on the test database; returns (status, out, err)."""
    monkeypatch.setenv("HOTDESK_DATABASE_URL", runtime.config.database.url)
    monkeypatch.setenv("HOTDESK_SWITCH_CREDENTIALS", runtime.config.switch.credentials)
    monkeypatch.delenv("HOTDESK_CONFIG", raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        try:
            status = main(list(args))
        finally:
            process_database.initialize(runtime.db)  # main() bound the models to its own
        captured = capsys.readouterr()
        return status, captured.out, captured.err
    return run


def checksyncs(mac: str) -> list[OutboxNotify]:
    device = Device.get(Device.mac == mac)
    return list(OutboxNotify.select().where(OutboxNotify.device == device))


def test_adding_a_phone_queues_one_checksync_from_every_front_end(runtime, app, root_client,
                                                                 sysadmin, cli):
    status, out, _ = cli("device", "add", "--mac", "00:15:65:00:00:01", "--extension", "8001",
                         "--sip-password", "idle-pw")
    assert status == 0 and "check-sync NOTIFY queued" in out
    token = csrf_token(root_client, "/phones/new")
    page = root_client.post("/phones/new", data=dict(PHONE, mac="00:15:65:00:00:02",
                                                     extension="8002", csrf_token=token))
    assert page.status_code == 302
    api = app.test_client().post("/api/v1/phones", headers=bearer(runtime, sysadmin),
                                 json=dict(PHONE, mac="00:15:65:00:00:03", extension="8003"))
    assert api.status_code == 201
    for mac, ext in (("001565000001", "8001"), ("001565000002", "8002"),
                     ("001565000003", "8003")):
        rows = checksyncs(mac)
        assert [(r.endpoint, r.config_version, r.status) for r in rows] == [(ext, 1, "pending")]
        audit = AuditEvent.get((AuditEvent.action == "check_sync")
                               & (AuditEvent.device == rows[0].device_id))
        assert f'"outbox": {rows[0].id}' in audit.detail  # the row it queued, not a guess


def test_refusals_carry_their_kind_not_their_wording(runtime, app, sysadmin, desk, cli):
    """"extension 8001 is a hot-desk phone's idle extension" says neither "already" nor
    "belongs to": it is still a conflict (409), as a duplicate extension is."""
    client, headers = app.test_client(), bearer(runtime, sysadmin)
    clash = client.post("/api/v1/users", headers=headers, json={"extension": "8001"})
    assert clash.status_code == 409 and clash.json["kind"] == "conflict"
    assert clash.json["error"] == "extension 8001 is a hot-desk phone's idle extension"
    bad = client.post("/api/v1/users", headers=headers, json={"extension": "12a"})
    assert bad.status_code == 400 and bad.json["kind"] == "invalid"
    status, _, err = cli("user", "add", "--extension", "8001")
    assert status == 1 and err.strip() == ("hotdesk: extension 8001 is a hot-desk phone's "
                                           "idle extension")
    status, _, err = cli("user", "unlock", "999")
    assert status == 1 and "no user with extension 999" in err


BAD_INPUT = [
    ({"name": "x" * 10_000}, "name must be at most 100 characters"),
    ({"name": "Alice\nInjected: yes"}, "name must not contain control characters"),
    ({"sip_password": "pw\nline2"}, "SIP password must be 1 to 128 printable ASCII"),
    ({"sip_password": 'a"b c'}, "SIP password must be 1 to 128 printable ASCII"),
]


@pytest.mark.parametrize(("fields", "message"), BAD_INPUT)
def test_one_validation_for_cli_pages_and_api(runtime, app, root_client, sysadmin, cli,
                                              fields, message):
    """Before, the CLI stored a 10 kB name or a newline and the API cut the name at 100."""
    args = ["user", "add", "--extension", "300"]
    for key, value in fields.items():
        args += [f"--{key.replace('_', '-')}", value]
    status, _, err = cli(*args)
    assert status == 1 and message in err
    token = csrf_token(root_client, "/users/new")
    page = root_client.post("/users/new", data={"extension": "301", "csrf_token": token,
                                                **fields})
    assert page.status_code == 400 and message in page.get_data(as_text=True)
    api = app.test_client().post("/api/v1/users", headers=bearer(runtime, sysadmin),
                                 json={"extension": "302", **fields})
    assert api.status_code == 400 and message in api.json["error"]
    assert User.select().count() == 0
    # Changing an existing user goes through the same rules.
    user = app.test_client().post("/api/v1/users", headers=bearer(runtime, sysadmin),
                                  json={"extension": "303"}).json["user"]
    put = app.test_client().put(f"/api/v1/users/{user['id']}",
                                headers=bearer(runtime, sysadmin), json=fields)
    assert put.status_code == 400 and message in put.json["error"]


def lock_out(runtime, desk, extension: str = "101") -> None:
    for n in range(runtime.config.policy.lockout_failures):
        ctx = CallContext(switch="asterisk", call_id=f"bad{n}", endpoint=desk.idle_extension)
        assert outcome(runtime.service.login(desk.id, extension, "0000", ctx)) == \
            Outcome.WRONG_PIN
    ctx = CallContext(switch="asterisk", call_id="locked", endpoint=desk.idle_extension)
    assert outcome(runtime.service.login(desk.id, extension, "1234", ctx)) == Outcome.LOCKED


def outcome(result: object) -> Outcome:
    """login() returns a typed result (its ``outcome``)."""
    return getattr(result, "outcome", result)  # type: ignore[return-value]


def right_pin(runtime, desk, extension: str = "101") -> Outcome:
    ctx = CallContext(switch="asterisk", call_id="good", endpoint=desk.idle_extension)
    return outcome(runtime.service.login(desk.id, extension, "1234", ctx))


def test_cli_unlock_lifts_a_lockout(runtime, alice, desk, cli):
    lock_out(runtime, desk)
    status, out, _ = cli("user", "list")
    assert "locked until" in out
    status, out, _ = cli("user", "unlock", "101")
    assert status == 0 and "user 101 unlocked" in out
    assert right_pin(runtime, desk) == Outcome.LOGGED_IN
    assert AuditEvent.get(AuditEvent.action == "user_unlocked").actor == "cli"
    # The failures stay as evidence, they just stop counting.
    assert LoginAttempt.select().where(LoginAttempt.result == "wrong_pin_unlocked").count() == 5


def test_api_shows_locked_until_and_unlocks(runtime, app, sysadmin, alice, desk):
    client, headers = app.test_client(), bearer(runtime, sysadmin)
    assert client.get(f"/api/v1/users/{alice.id}", headers=headers).json["user"][
        "locked_until"] is None
    lock_out(runtime, desk)
    listed = client.get("/api/v1/users", headers=headers).json["users"]
    assert listed[0]["locked_until"] and listed[0]["locked_until"].endswith("Z")
    unlocked = client.post(f"/api/v1/users/{alice.id}/unlock", headers=headers)
    assert unlocked.status_code == 200 and unlocked.json["user"]["locked_until"] is None
    assert right_pin(runtime, desk) == Outcome.LOGGED_IN


def test_pages_show_locked_until_and_unlock_button(runtime, root_client, alice, desk):
    lock_out(runtime, desk)
    assert "locked until" in root_client.get("/users").get_data(as_text=True)
    page = root_client.get(f"/users/{alice.id}").get_data(as_text=True)
    assert "locked until" in page and f"/users/{alice.id}/unlock" in page
    token = csrf_token(root_client, f"/users/{alice.id}")
    assert root_client.post(f"/users/{alice.id}/unlock",
                            data={"csrf_token": token}).status_code == 302
    assert "locked until" not in root_client.get("/users").get_data(as_text=True)
    assert right_pin(runtime, desk) == Outcome.LOGGED_IN


def test_an_admin_set_pin_also_lifts_the_lockout(runtime, alice, desk, cli):
    lock_out(runtime, desk)
    assert cli("user", "set-pin", "101", "--pin", "1234")[0] == 0
    assert right_pin(runtime, desk) == Outcome.LOGGED_IN


def test_disabling_a_user_ends_their_sessions_and_reprovisions(runtime, alice, desk, cli):
    assert right_pin(runtime, desk) == Outcome.LOGGED_IN
    version = Device.get_by_id(desk.id).config_version
    before = OutboxNotify.select().count()
    status, out, _ = cli("user", "disable", "101")
    assert status == 0 and "re-provisioned 00:15:65:12:34:AB" in out
    assert not Session.select().where(Session.ended_at.is_null()).exists()
    assert Session.get().end_reason == "user_disabled"
    assert Device.get_by_id(desk.id).config_version == version + 1
    rows = list(OutboxNotify.select().order_by(OutboxNotify.id))[before:]
    # Addressed to what the phone is registered as until it fetches the idle config.
    assert [(r.endpoint, r.config_version) for r in rows] == [("101", version + 1)]


def test_disabling_from_the_edit_page_and_api_does_the_same(runtime, app, root_client,
                                                            sysadmin, alice, bob, desk, desk2):
    assert right_pin(runtime, desk) == Outcome.LOGGED_IN
    token = csrf_token(root_client, f"/users/{alice.id}")
    root_client.post(f"/users/{alice.id}", data={"name": "Alice", "csrf_token": token})
    assert not Session.select().where(Session.ended_at.is_null()).exists()
    ctx = CallContext(switch="asterisk", call_id="b", endpoint="8002")
    assert outcome(runtime.service.login(desk2.id, "102", "4321", ctx)) == Outcome.LOGGED_IN
    put = app.test_client().put(f"/api/v1/users/{bob.id}/hotdesk",
                                headers=bearer(runtime, sysadmin), json={"enabled": False})
    assert put.json["reprovisioned"] == [desk2.id]
    assert not Session.select().where(Session.ended_at.is_null()).exists()


def test_new_sip_password_reaches_the_logged_in_phone(runtime, app, sysadmin, alice, desk):
    assert right_pin(runtime, desk) == Outcome.LOGGED_IN
    device = Device.get_by_id(desk.id)
    url = f"/prov/{device.prov_token}/{device.mac}.cfg"
    client = app.test_client()
    old = client.get(url).get_data(as_text=True)
    assert "alice-secret" in old  # the config the web now has cached
    before = OutboxNotify.select().count()
    put = client.put(f"/api/v1/users/{alice.id}", headers=bearer(runtime, sysadmin),
                     json={"sip_password": "n3w-Secret"})
    assert put.status_code == 200 and put.json["reprovisioned"] == [desk.id]
    assert Device.get_by_id(desk.id).config_version == device.config_version + 1
    rows = list(OutboxNotify.select().order_by(OutboxNotify.id))[before:]
    assert [(r.endpoint, r.config_version) for r in rows] == [("101",
                                                              device.config_version + 1)]
    new = client.get(url).get_data(as_text=True)
    assert "n3w-Secret" in new and "alice-secret" not in new


def test_sip_password_of_a_user_not_logged_in_queues_nothing(runtime, alice, desk, cli):
    before = OutboxNotify.select().count()
    status, out, _ = cli("user", "change", "101", "--sip-password", "n3w-Secret")
    assert status == 0 and "re-provisioned" not in out
    assert OutboxNotify.select().count() == before
    assert User.get_by_id(alice.id).sip_password == "n3w-Secret"


def test_a_pnp_push_the_phone_never_answers_is_a_failed_step(runtime):
    """Seen on the LAN, but the NOTIFY goes unanswered: reported as failed, not success."""
    import dataclasses
    import socket

    from hotdesk.admin import usecases
    from hotdesk.admin.inventory import DeviceSpec, default_tenant
    from hotdesk.provisioning.discovery import Sighting, record_sighting
    from hotdesk.runtime import Runtime

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        record_sighting(runtime.db, Sighting("001565000077", "Yealink", "T46U", "1", address))
        cfg = dataclasses.replace(runtime.config, pnp=dataclasses.replace(
            runtime.config.pnp, t1_ms=50, notify_timeout_seconds=0.3))
        rt = Runtime(config=cfg, db=runtime.db, service=runtime.service)
        result = usecases.add_phone(rt, default_tenant(), DeviceSpec(
            mac="00:15:65:00:00:77", extension="8077", sip_password="idle-pw"), actor="t")
    assert [s.name for s in result.steps] == ["check-sync", "pnp"]
    assert result.steps[0].ok and result.steps[1].ok is False
    assert result.steps[1].message.startswith("PnP URL push: ")



def test_with_credentials_on_the_switch_every_front_end_refuses_a_sip_password(
        runtime, app, root_client, sysadmin, alice, cli, monkeypatch):
    app.config["HOTDESK"].config = dataclasses.replace(
        runtime.config, switch=dataclasses.replace(runtime.config.switch, credentials="switch"))
    monkeypatch.setenv("HOTDESK_SWITCH_CREDENTIALS", "switch")
    message = "[switch] credentials = switch: the SIP password is read from the switch"
    status, _, err = cli("user", "change", "101", "--sip-password", "n3w-Secret")
    assert status == 1 and message in err
    api = app.test_client().put(f"/api/v1/users/{alice.id}", headers=bearer(runtime, sysadmin),
                                json={"sip_password": "n3w-Secret"})
    assert api.status_code == 400 and message in api.json["error"]
    token = csrf_token(root_client, f"/users/{alice.id}")
    page = root_client.post(f"/users/{alice.id}", data={"name": "Alice", "hotdesk": "on",
                                                        "sip_password": "n3w-Secret",
                                                        "csrf_token": token})
    assert page.status_code == 400 and "credentials = switch" in page.get_data(as_text=True)
    assert User.get_by_id(alice.id).sip_password == "alice-secret"
