"""The switch-neutral emergency rule: which entry the switch's store holds per account,
marked in the login/logout transaction and written by a drain that survives outages."""

from __future__ import annotations

import pytest

from hotdesk.admin.inventory import default_tenant
from hotdesk.calls.service import CallContext, Outcome
from hotdesk.emergency import editing, locations
from hotdesk.emergency.locations import LocationError
from hotdesk.emergency.models import EmergencySync
from hotdesk.switch import emergency
from hotdesk.switch.emergency import Entry, EntryKey, StoreDown, StoreError


class Recorder:
    """A StoreWriter that keeps what a switch would hold; can be made to fail."""

    def __init__(self) -> None:
        self.store: dict[str, Entry] = {}
        self.fail: Exception | None = None
        self.writes = 0

    def write(self, key: EntryKey, entry: Entry | None) -> None:
        if self.fail is not None:
            raise self.fail
        self.writes += 1
        if entry is None:
            self.store.pop(key.endpoint, None)
        else:
            self.store[key.endpoint] = entry


class BatchRecorder(Recorder):
    """The same switch behind ``write_many``: a round's writes in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def write_many(self, items):  # type: ignore[no-untyped-def]
        self.batches.append(len(items))
        results = []
        for key, entry in items:
            try:
                self.write(key, entry)
            except Exception as exc:  # noqa: BLE001 - handed back per item
                results.append(exc)
            else:
                results.append(None)
        return results


@pytest.fixture(params=[Recorder, BatchRecorder], ids=["one-by-one", "batch"])
def switch_class(request):  # type: ignore[no-untyped-def]
    return request.param


def ctx() -> CallContext:
    return CallContext(switch="asterisk", call_id="c1", endpoint="8001", source="192.0.2.10:5060")


DESK_3 = {"country": "us", "region": "CA", "city": "Springfield", "street": "Main St",
          "number": "1", "building": "A", "floor": "3", "room": "3.01", "callback": "+15550100"}


def set_location(runtime, device, values) -> None:
    editing.set_location(runtime.db, default_tenant(), device, values, "admin:test")


def test_login_moves_the_desk_location_to_the_users_account_and_logout_removes_it(
        runtime, alice, desk, switch_class):
    set_location(runtime, desk, DESK_3)
    switch = switch_class()
    emergency.drain_once(switch)
    assert switch.store["8001"].callback == "+15550100"
    assert switch.store["8001"].civic.startswith('country="US",A1="CA",A3="Springfield"')
    assert "101" not in switch.store

    assert runtime.service.login(desk.id, "101", "1234", ctx()).outcome is Outcome.LOGGED_IN
    assert emergency.pending_count() >= 1  # marked in the login's own transaction
    emergency.drain_once(switch)
    assert switch.store["101"] == switch.store["8001"]
    assert switch.store["101"].text == ("1 Main St, Springfield, CA, US; building A, floor 3, "
                                        "room 3.01")
    assert emergency.pending_count() == 0

    assert runtime.service.logout(desk.id) is Outcome.LOGGED_OUT
    emergency.drain_once(switch)
    assert "101" not in switch.store and "8001" in switch.store
    if isinstance(switch, BatchRecorder):  # a round's writes went out together
        assert switch.batches and max(switch.batches) >= 2


def test_auto_logout_moves_the_entry_to_the_new_desk(runtime, alice, desk, desk2, switch_class):
    set_location(runtime, desk, {**DESK_3, "room": "3.01"})
    set_location(runtime, desk2, {**DESK_3, "room": "4.12", "floor": "4"})
    switch = switch_class()
    runtime.service.login(desk.id, "101", "1234", ctx())
    runtime.service.login(desk2.id, "101", "1234", ctx())
    emergency.drain_once(switch)
    assert 'ROOM="4.12"' in switch.store["101"].civic


def test_tenant_default_fills_gaps_and_is_its_own_entry(runtime, alice, desk):
    set_location(runtime, None, {"country": "DE", "city": "Berlin", "street": "Hauptstr",
                                 "number": "5", "callback": "+49301234"})
    set_location(runtime, desk, {"floor": "2", "room": "2.10"})
    switch = Recorder()
    emergency.drain_once(switch)
    assert switch.store[""].text == "5 Hauptstr, Berlin, DE"
    assert switch.store["8001"].callback == "+49301234"
    assert switch.store["8001"].text == "5 Hauptstr, Berlin, DE; floor 2, room 2.10"


def test_switch_down_keeps_every_mark_and_the_catch_up_writes_the_state_of_then(
        runtime, alice, bob, desk, switch_class):
    set_location(runtime, desk, DESK_3)
    switch = switch_class()
    switch.fail = StoreDown("AMI not connected")
    runtime.service.login(desk.id, "101", "1234", ctx())
    runtime.service.login(desk.id, "102", "4321", ctx())  # bob replaces alice
    assert emergency.drain_once(switch)["switch_down"] == 1
    assert EmergencySync.get(EmergencySync.endpoint == "101").attempts == 0
    switch.fail = None
    emergency.drain_once(switch)
    assert "102" in switch.store and "101" not in switch.store


def test_a_refused_write_is_retried_later(runtime, desk, switch_class):
    set_location(runtime, desk, DESK_3)
    switch = switch_class()
    switch.fail = StoreError("Permission denied")
    assert emergency.drain_once(switch)["retry"] == 1
    row = EmergencySync.get(EmergencySync.endpoint == "8001")
    assert row.pending and row.attempts == 1 and row.last_error == "Permission denied"
    switch.fail = None
    assert emergency.drain_once(switch)["written"] == 0  # backing off
    assert emergency.drain_once(switch, now=row.next_attempt_at)["written"] == 1


def test_a_mark_during_a_write_is_not_lost(runtime, desk, switch_class):
    set_location(runtime, desk, DESK_3)

    class Remarking(switch_class):  # type: ignore[misc, valid-type]
        def write(self, key, entry):
            super().write(key, entry)
            if self.writes == 1:
                emergency.mark(desk.tenant_id, key.endpoint)

    switch = Remarking()
    emergency.drain_once(switch)
    assert emergency.pending_count() == 1
    emergency.drain_once(switch)
    assert emergency.pending_count() == 0 and switch.writes == 2


@pytest.mark.parametrize("values, message", [
    ({"room": 'say "hi"'}, "room"), ({"callback": "call me"}, "callback"),
    ({"country": "USA"}, "country"), ({"floor": "x" * 121}, "floor"),
    ({"street": "a/b"}, "street"), ({"planet": "Mars"}, "unknown"),
])
def test_bad_location_input_is_refused_with_the_field_named(values, message):
    with pytest.raises(LocationError, match=message):
        locations.check(values)


def test_without_any_location_the_switch_gets_no_writes_until_a_resync(runtime, alice, desk):
    """Installs that do not use the feature cause no AMI/ESL traffic; a resync also removes
    what hotdesk does not know the switch holds."""
    switch = Recorder()
    runtime.service.login(desk.id, "101", "1234", ctx())
    runtime.service.logout(desk.id)
    emergency.drain_once(switch)
    assert switch.writes == 0 and emergency.pending_count() == 0
    emergency.resync_all()
    emergency.drain_once(switch)
    assert switch.writes == 3  # the tenant default, 8001 and 101: each removed once
    emergency.mark(desk.tenant_id, "101")
    emergency.drain_once(switch)
    assert switch.writes == 3


def test_an_unexpected_failure_keeps_what_was_written_before_it(runtime, alice, desk,
                                                               switch_class):
    """A bug in a writer surfaces (the drain loop logs it and retries), but the entries
    written before it stay recorded as written, in one-by-one and batch mode alike."""
    set_location(runtime, desk, DESK_3)
    emergency.drain_once(switch_class())  # 8001 written
    runtime.service.login(desk.id, "101", "1234", ctx())  # marks 8001 and 101

    class Broken(switch_class):  # type: ignore[misc, valid-type]
        def write(self, key, entry):
            if key.endpoint == "101":
                raise RuntimeError("bug in the writer")
            super().write(key, entry)

    switch = Broken()
    with pytest.raises(RuntimeError, match="bug in the writer"):
        emergency.drain_once(switch)
    pending = {r.endpoint for r in EmergencySync.select().where(EmergencySync.pending)}
    assert "101" in pending and "8001" not in pending
