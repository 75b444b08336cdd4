"""The worker's batched account reads: pipelined AMI Getvar and Event Socket api
user_data, each answer exactly what a single read gives (a missing account, a refused
read, the switch lost mid-batch), the fakes against the lab captures, and drift.heal
over a batch reader giving the same result as over one read at a time."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

import pytest
from peewee import fn

from esl_handlers.inbound import InboundConnection
from esl_handlers.switch_view import FreeswitchView
from hotdesk.admin.inventory import add_user, default_tenant
from hotdesk.provisioning.render import ConfigCache
from hotdesk.settings import AmiConfig, Config, EslConfig, SwitchConfig
from hotdesk.store.models import Device, OutboxNotify
from hotdesk.switch import drift
from hotdesk.switch.accounts import (
    AccountError,
    AccountMissing,
    CachedReader,
    Credentials,
    read_many,
)
from hotdesk_agi import ami_sync
from hotdesk_agi.ami_sync import BlockingAmi
from hotdesk_agi.switch_view import AsteriskView
from tests.conftest import CAPTURES
from tests.fakes.asterisk_accounts import AccountsAMI, ThreadedAMI
from tests.fakes.freeswitch_accounts import DirectoryServer
from tests.test_asterisk_fakes import _exchange, split_actions

SECRET = "hotdesk-secret"


def outcome(result: Credentials | AccountError) -> tuple[str, str]:
    """What a read gave, comparable: (kind, detail)."""
    if isinstance(result, Credentials):
        return "ok", f"{result.auth_username}:{result.password}"
    return type(result).__name__, str(result)


def one_by_one(reader, keys) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    out = []
    for account, domain in keys:
        try:
            out.append(outcome(reader.read(account, domain)))
        except AccountError as exc:
            out.append(outcome(exc))
    return out


class Sequential:
    """Hides read_many: the reader the worker had before batching."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner

    def read(self, account: str, domain: str) -> Credentials:
        return self.inner.read(account, domain)


# -- Asterisk ----------------------------------------------------------------------------


class DroppingAMI(AccountsAMI):
    """Asterisk going away after answering ``answer`` Getvars (every connection)."""

    def __init__(self, *args, answer: int, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.answer = answer
        self.getvars = 0

    def _getvar(self, conn, h, aid):  # type: ignore[no-untyped-def]
        self.getvars += 1
        if self.getvars > self.answer:
            self._writers[conn].transport.abort()
            return
        super()._getvar(conn, h, aid)


def asterisk(fake: AccountsAMI) -> AccountsAMI:
    fake.add_account("101", "secret101")
    fake.add_account("102", "secret102", username="alice102")
    fake.add_account("103", "secret103")
    fake.add_account("105", "")  # md5_cred only: no plain password
    return fake


KEYS = [("101", "default"), ("999", "default"), ("102", "default"), ("105", "default"),
        ("103", "default")]


@pytest.fixture
def ami():
    with ThreadedAMI(asterisk(AccountsAMI(secret=SECRET))) as running:
        yield running


def view_of(fake: AccountsAMI) -> AsteriskView:
    return AsteriskView(BlockingAmi(AmiConfig(port=fake.port, secret=SECRET), timeout=3.0))


def test_fake_ami_answers_pipelined_getvars_like_asterisk():
    """Getvars written several at once: answered in order with their ActionIDs, a missing
    endpoint and an unknown function with an empty Value in their place (lab capture)."""
    c2s = (CAPTURES["asterisk"] / "ami-getvar-pipelined.c2s.bin").read_bytes()
    s2c = (CAPTURES["asterisk"] / "ami-getvar-pipelined.s2c.bin").read_bytes()
    actions = split_actions(c2s)
    assert len(actions) == 13
    fake = AccountsAMI(secret="labsecret")
    for name in ("101", "102", "8001"):
        fake.add_account(name, f"secret{name}")
    got = asyncio.run(_exchange(fake, [(actions[0], 1), (b"".join(actions[1:6]), 5),
                                       (b"".join(actions[6:12]), 6), (actions[12], 1)]))
    assert got == s2c


def test_batch_read_gives_each_account_what_a_single_read_gives(ami):
    view = view_of(ami)
    batch = [outcome(r) for r in view.read_many(KEYS)]
    assert batch == one_by_one(view_of(ami), KEYS)
    assert batch[0] == ("ok", "101:secret101") and batch[2] == ("ok", "alice102:secret102")
    assert batch[1][0] == "AccountMissing" and "no pjsip endpoint 999" in batch[1][1]
    assert batch[3][0] == "AccountMissing" and "no plain password" in batch[3][1]
    assert batch[4] == ("ok", "103:secret103")


def test_batch_read_is_two_pipelined_passes_on_one_connection(ami):
    before = ami.logins_ok
    view_of(ami).read_many(KEYS)
    getvars = [dict(a)["Variable"] for a in ami.actions if dict(a).get("Action") == "Getvar"]
    # Every endpoint first, then username and password of the four that have an auth.
    assert getvars[:5] == [f"AST_SORCERY(res_pjsip,endpoint,{a},auth)" for a, _ in KEYS]
    assert len(getvars) == 5 + 2 * 4
    assert ami.logins_ok == before + 1


def test_batch_larger_than_a_window(ami, monkeypatch):
    monkeypatch.setattr(ami_sync, "WINDOW", 7)
    keys = [(f"2{i:03d}", "default") for i in range(40)]
    for i in range(0, 40, 2):
        ami.add_account(f"2{i:03d}", f"pw{i}")
    results = view_of(ami).read_many(keys)
    assert [outcome(r)[0] for r in results] == ["ok", "AccountMissing"] * 20
    assert [r.password for r in results[::2]] == [f"pw{i}" for i in range(0, 40, 2)]


def test_refused_getvar_in_a_batch_is_the_single_read_error(ami):
    ami.write = {"system"}  # manager.conf write = system only
    batch = [outcome(r) for r in view_of(ami).read_many(KEYS)]
    assert batch == one_by_one(view_of(ami), KEYS)
    assert all(kind == "AccountError" and "Permission denied" in text
               for kind, text in batch)


def test_switch_lost_mid_batch_fails_the_rest_and_the_next_batch_reconnects():
    fake = asterisk(DroppingAMI(secret=SECRET, answer=3))
    with ThreadedAMI(fake):
        view = view_of(fake)
        batch = view.read_many(KEYS)
        # Endpoints of 101, 999 and 102 answered; the connection went before the rest.
        assert [type(r).__name__ for r in batch] == ["AccountError", "AccountMissing",
                                                     "AccountError", "AccountError",
                                                     "AccountError"]
        assert "closed the connection" in str(batch[0])
        fake.answer = 10_000
        assert outcome(view.read_many(KEYS)[0]) == ("ok", "101:secret101")


def test_switch_down_fails_every_read_of_the_batch(config):
    view = AsteriskView(BlockingAmi(AmiConfig(port=1, secret=SECRET), timeout=1.0))
    batch = view.read_many(KEYS)
    assert len(batch) == len(KEYS)
    assert all(isinstance(r, AccountError) and "unreachable" in str(r) for r in batch)


def test_sequential_reader_stops_at_the_first_switch_error():
    asked = []

    class Reader:
        def read(self, account: str, domain: str) -> Credentials:
            asked.append(account)
            if account == "999":
                raise AccountMissing("no such account")
            if account == "105":
                raise AccountError("switch down")
            return Credentials(account, "pw")

    results = read_many(Reader(), KEYS)
    assert asked == ["101", "999", "102", "105"]  # 103 was not asked
    assert [outcome(r)[0] for r in results] == ["ok", "AccountMissing", "ok", "AccountError",
                                                "AccountError"]


# -- drift.heal over a batch -------------------------------------------------------------


def logged_in_fleet(runtime, cfg: Config, reader) -> list[Device]:  # type: ignore[no-untyped-def]
    """Five phones, a user of KEYS logged in on each, every config fetched."""
    from hotdesk.admin.inventory import DeviceSpec, add_device
    from hotdesk.calls.service import CallContext

    tenant = default_tenant()
    devices = []
    for n, (account, _) in enumerate(KEYS):
        device = add_device(runtime.db, tenant, DeviceSpec(
            mac=f"00:15:65:00:01:{n:02x}", extension=f"80{n:02d}", sip_password="idle-pw"))
        add_user(runtime.db, tenant, account, name=f"User {account}", pin="1234",
                 hotdesk=True)
        ctx = CallContext(switch="asterisk", call_id=f"t{n}", endpoint=device.idle_extension,
                          source="127.0.0.1:5071")
        assert runtime.service.login(device.id, account, "1234", ctx).outcome.name \
            == "LOGGED_IN"
        devices.append(device)
    cache = ConfigCache(cfg, accounts=reader)
    for device in devices:
        fresh = Device.get_by_id(device.id)
        with contextlib.suppress(AccountError):  # the users the switch has no account for
            cache.get(fresh, f"{fresh.mac}.cfg")
        Device.update(fetched_version=Device.config_version).where(
            Device.id == device.id).execute()
        if not Device.get_by_id(device.id).account_fingerprint:
            # A user the switch has no account for: no fingerprint, so give it one to
            # compare (as a config rendered before the account went away would).
            Device.update(account_fingerprint="stale").where(Device.id == device.id).execute()
    return devices


def heal_outcome(result: drift.DriftResult) -> tuple:  # type: ignore[type-arg]
    return result.checked, result.reprovisioned, result.problems, result.deferred


@pytest.fixture
def cfg(config, ami) -> Config:
    return dataclasses.replace(config, ami=AmiConfig(port=ami.port, secret=SECRET),
                               switch=SwitchConfig(credentials="switch"))


def test_heal_over_a_batch_equals_heal_one_read_at_a_time(runtime, cfg, ami):
    """A missing account and a password without plain text in the middle of the batch
    are reported for their user only; the changed password after them is re-provisioned,
    exactly as with one read per user."""
    logged_in_fleet(runtime, cfg, CachedReader(view_of(ami), 0.0))
    ami.sorcery[("auth", "103", "password")] = "rotated"
    queued = OutboxNotify.select(fn.MAX(OutboxNotify.id)).scalar()  # the logins' NOTIFYs
    snapshot = [(d.id, d.config_version, d.account_fingerprint)
                for d in Device.select().order_by(Device.id)]

    sequential = drift.heal(runtime.db, cfg, Sequential(view_of(ami)))
    after_sequential = [(d.id, d.config_version) for d in Device.select().order_by(Device.id)]
    for device_id, version, fingerprint in snapshot:  # back to before, for the batch
        Device.update(config_version=version, account_fingerprint=fingerprint).where(
            Device.id == device_id).execute()
    OutboxNotify.delete().where(OutboxNotify.id > queued).execute()
    batched = drift.heal(runtime.db, cfg, CachedReader(view_of(ami), 0.0))

    assert heal_outcome(batched) == heal_outcome(sequential)
    assert [(d.id, d.config_version) for d in Device.select().order_by(Device.id)] \
        == after_sequential
    assert batched.checked == 5 and batched.reprovisioned == 1
    assert len(batched.problems) == 2
    assert [row.endpoint for row in OutboxNotify.select().where(OutboxNotify.id > queued)] \
        == ["103"]


def test_heal_stops_where_the_switch_was_lost_mid_batch(runtime, config):
    fake = asterisk(DroppingAMI(secret=SECRET, answer=10_000))
    with ThreadedAMI(fake):
        cfg = dataclasses.replace(config, ami=AmiConfig(port=fake.port, secret=SECRET),
                                  switch=SwitchConfig(credentials="switch"))
        logged_in_fleet(runtime, cfg, CachedReader(view_of(fake), 0.0))
        fake.sorcery[("auth", "101", "password")] = "rotated"
        fake.getvars, fake.answer = 0, 3  # the endpoints of 101, 999, 102, then gone
        queued = OutboxNotify.select().count()  # the logins' NOTIFYs
        rotation = drift.Rotation()
        result = drift.heal(runtime.db, cfg, CachedReader(view_of(fake), 0.0),
                            read_budget=3, rotation=rotation)
        # 101's username/password were never answered: it stops at the first phone...
        assert result.reprovisioned == 0 and result.checked == 1
        assert len(result.problems) == 1 and "closed the connection" in result.problems[0]
        assert OutboxNotify.select().count() == queued
        # ... and the next tick, the switch back, starts the turn again at that phone.
        fake.answer = 10_000
        again = drift.heal(runtime.db, cfg, CachedReader(view_of(fake), 0.0),
                           read_budget=3, rotation=rotation)
    assert again.checked == 3 and again.reprovisioned == 1
    assert OutboxNotify.select().order_by(OutboxNotify.id.desc()).first().endpoint == "101"


def endpoints_read(ami: AccountsAMI, since: int) -> list[str]:
    return [dict(a)["Variable"].split(",")[2] for a in ami.actions[since:]
            if dict(a).get("Action") == "Getvar" and ",endpoint," in dict(a)["Variable"]]


def test_bounded_reads_take_the_users_in_turn_and_see_a_change_within_the_bound(
        runtime, cfg, ami):
    """Two reads per tick over five logged-in users: each tick reads the next two phones'
    accounts (wrapping around), so a password changed on the last phone's user is
    re-provisioned by the third tick at the latest: ceil(5 / 2)."""
    logged_in_fleet(runtime, cfg, CachedReader(view_of(ami), 0.0))
    queued = OutboxNotify.select(fn.MAX(OutboxNotify.id)).scalar()
    rotation, memo = drift.Rotation(), drift.FingerprintMemo()
    view = CachedReader(view_of(ami), 0.0)

    def tick() -> tuple[list[str], drift.DriftResult]:
        since = len(ami.actions)
        result = drift.heal(runtime.db, cfg, view, memo=memo, read_budget=2,
                            rotation=rotation)
        return endpoints_read(ami, since), result

    ticks = [tick() for _ in range(3)]
    assert [sorted(read) for read, _ in ticks] == [["101", "999"], ["102", "105"],
                                                    ["101", "103"]]
    assert all(r.checked == 2 and r.waiting == 3 for _, r in ticks)
    ami.sorcery[("auth", "103", "password")] = "rotated"  # the last phone's user
    seen = []
    for _ in range(3):
        read, result = tick()
        assert result.checked == 2
        seen.append((sorted(read), result.reprovisioned))
    # 103's phone then waits for its new config: out of the check until it fetches it.
    assert seen == [(["102", "999"], 0), (["103", "105"], 1), (["101", "999"], 0)]
    assert [row.endpoint for row in OutboxNotify.select().where(OutboxNotify.id > queued)] \
        == ["103"]


def test_default_budget_reads_every_account_of_a_small_install(runtime, cfg, ami):
    logged_in_fleet(runtime, cfg, CachedReader(view_of(ami), 0.0))
    since = len(ami.actions)
    result = drift.heal(runtime.db, cfg, CachedReader(view_of(ami), 0.0),
                        read_budget=cfg.switch.drift_reads_per_tick, rotation=drift.Rotation())
    assert cfg.switch.drift_reads_per_tick >= 5 and result.waiting == 0
    assert sorted(endpoints_read(ami, since)) == sorted(a for a, _ in KEYS)


def test_phones_with_a_stored_password_are_checked_every_tick(runtime, cfg, ami):
    from hotdesk.store.models import User

    logged_in_fleet(runtime, cfg, CachedReader(view_of(ami), 0.0))
    User.update(sip_password="stored").where(User.extension == "102").execute()
    result = drift.heal(runtime.db, cfg, CachedReader(view_of(ami), 0.0), read_budget=1,
                        rotation=drift.Rotation())
    # 101 read from the switch; 102's stored password (its fingerprint now differs) is
    # checked too, outside the budget
    assert result.checked == 2 and result.waiting == 3 and result.reprovisioned == 1
    assert OutboxNotify.select().order_by(OutboxNotify.id.desc()).first().endpoint == "102"


def test_negative_read_budget_is_refused():
    from hotdesk.settings import ConfigError, load_config

    with pytest.raises(ConfigError, match="drift_reads_per_tick = -1 must be 0"):
        load_config(environ={"HOTDESK_SWITCH_DRIFT_READS_PER_TICK": "-1"})
    assert load_config(environ={}).switch.drift_reads_per_tick == 1000


# -- FreeSWITCH --------------------------------------------------------------------------


class DroppingDirectory(DirectoryServer):
    """FreeSWITCH going away after answering ``answer`` api commands."""

    def __init__(self, *args, answer: int = 10_000, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.answer = answer
        self.answered = 0

    def _api(self, cmd: str) -> bytes:
        self.answered += 1
        if self.answered > self.answer:
            raise OSError("FreeSWITCH went away")
        return super()._api(cmd)


def directory(server: DirectoryServer) -> DirectoryServer:
    server.add_user("101", "default", password="secret101")
    server.add_user("102", "default", password="secret102")
    server.add_user("103", "default", password="secret103")
    server.add_user("105", "default", a1_hash="0123456789abcdef0123456789abcdef")
    return server


@pytest.fixture
def fs():
    server = directory(DroppingDirectory())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fs_view(fs):
    inbound = InboundConnection("127.0.0.1", fs.address[1], "ClueCon")
    inbound.start()
    assert inbound.wait_connected(5)
    yield FreeswitchView(inbound)
    inbound.stop()


def test_fake_event_socket_answers_pipelined_user_data_like_freeswitch():
    """api user_data written several at once: answered in order, a miss in its place
    (lab capture)."""
    import socket

    c2s = (CAPTURES["freeswitch"] / "esl-user-data-pipelined.c2s.bin").read_bytes()
    s2c = (CAPTURES["freeswitch"] / "esl-user-data-pipelined.s2c.bin").read_bytes()
    commands = [block + b"\n\n" for block in c2s.split(b"\n\n")[:-1]]
    assert len(commands) == 9
    server = DirectoryServer()
    for user in ("101", "102", "8001"):
        server.add_user(user, "127.0.0.1", password=f"secret{user}")
    server.add_user("104", "127.0.0.1", a1_hash="585a4dc47f69b8871e9f5af8462b2d71")
    server.start()
    received = bytearray()
    try:
        with socket.create_connection(server.address, timeout=5) as sock:
            def until(n: int) -> None:
                while received.count(b"Content-Type: ") < n:
                    received.extend(sock.recv(65536))

            until(1)
            for chunk, total in ((commands[0], 2), (b"".join(commands[1:6]), 7),
                                 (b"".join(commands[6:8]), 9), (commands[8], 11)):
                sock.sendall(chunk)
                until(total)
            while data := sock.recv(65536):
                received.extend(data)
    finally:
        server.stop()
    assert bytes(received) == s2c


def test_freeswitch_batch_read_gives_each_account_what_a_single_read_gives(fs, fs_view):
    keys = [*KEYS, ("bad name", "default")]
    before = len(fs.commands)
    batch = [outcome(r) for r in fs_view.read_many(keys)]
    pipelined = fs.commands[before:]
    assert batch == one_by_one(fs_view, keys)
    assert batch[0] == ("ok", "101:secret101") and batch[4] == ("ok", "103:secret103")
    assert batch[1][0] == "AccountMissing" and "no directory user 999@default" in batch[1][1]
    assert batch[3][0] == "AccountMissing" and "only an a1-hash" in batch[3][1]
    assert batch[5][0] == "AccountMissing" and "not a valid directory user" in batch[5][1]
    # Every password first, then why for the two without one; the bad name is not sent.
    assert pipelined == [f"api user_data {a}@default param password" for a, _ in KEYS] + [
        "api user_data 999@default param a1-hash", "api user_data 999@default attr id",
        "api user_data 105@default param a1-hash", "api user_data 105@default attr id"]


def test_freeswitch_lost_mid_batch_fails_the_rest(fs, fs_view):
    fs.answer = 2
    batch = fs_view.read_many(KEYS)
    assert outcome(batch[0]) == ("ok", "101:secret101")
    assert all(isinstance(r, AccountError) and not isinstance(r, AccountMissing)
               and "Event Socket" in str(r) for r in batch[2:])
    # 999's password answered a miss, but why (a1-hash, id) was never answered.
    assert isinstance(batch[1], AccountError) and not isinstance(batch[1], AccountMissing)


def test_freeswitch_heal_over_a_batch(runtime, config, fs, fs_view):
    cfg = dataclasses.replace(config, esl=EslConfig(host="127.0.0.1", port=fs.address[1]),
                              switch=SwitchConfig(type="freeswitch", credentials="switch"))
    logged_in_fleet(runtime, cfg, CachedReader(fs_view, 0.0))
    fs.users["103@default"]["param:password"] = "rotated"
    queued = OutboxNotify.select(fn.MAX(OutboxNotify.id)).scalar()  # the logins' NOTIFYs
    result = drift.heal(runtime.db, cfg, CachedReader(fs_view, 0.0))
    assert result.checked == 5 and result.reprovisioned == 1 and len(result.problems) == 2
    assert [row.endpoint for row in OutboxNotify.select().where(OutboxNotify.id > queued)] \
        == ["103"]
