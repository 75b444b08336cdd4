"""How many statements a call's decisions send, and that the combined statements write
what the single ones did (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from peewee import Database

from hotdesk.calls.service import CallContext, Outcome, SwitchPin
from hotdesk.emergency.models import EmergencySync
from hotdesk.store.compiled import _inline_constants
from hotdesk.store.db import is_sqlite
from hotdesk.store.models import AuditEvent, Device, LoginAttempt, OutboxNotify, Session
from tests.conftest import make_device


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """Every statement sent to the server meanwhile (BEGIN/COMMIT included)."""
    sent: list[str] = []
    original_execute = db.execute_sql
    original_begin, original_commit = db.begin, db.commit

    def execute_sql(sql, params=None):  # type: ignore[no-untyped-def]
        sent.append(sql)
        return original_execute(sql, params)

    def begin(*a, **k):  # type: ignore[no-untyped-def]
        sent.append("BEGIN")
        return original_begin(*a, **k)

    def commit(*a, **k):  # type: ignore[no-untyped-def]
        sent.append("COMMIT")
        return original_commit(*a, **k)

    db.execute_sql, db.begin, db.commit = execute_sql, begin, commit  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        del db.execute_sql, db.begin, db.commit


def call(endpoint: str, source: str) -> CallContext:
    return CallContext(switch="asterisk", call_id="rt", endpoint=endpoint, source=source)


def test_postgresql_login_is_four_round_trips(runtime, alice, desk):
    if is_sqlite(runtime.db):
        pytest.skip("round trips are PostgreSQL's cost; SQLite runs in-process")
    svc = runtime.service
    ctx = call("8001", "192.0.2.10:5060")
    svc.login(desk.id, "101", "1234", ctx, SwitchPin("1234"))  # a session to replace
    with statements(runtime.db) as sent:
        phone = svc.identify_phone(ctx)
        caller = svc.check_caller(phone, "101")
        result = svc.login(phone.id, caller.extension, "1234", ctx, SwitchPin("1234"))
    assert result.outcome is Outcome.LOGGED_IN
    # identify, check the caller, BEGIN + locks + read, writes + COMMIT.
    assert len(sent) == 4, sent
    assert sent[2].startswith("BEGIN; ") and sent[3].endswith("; COMMIT")


def test_replacing_login_with_auto_logout_writes_every_row(runtime, alice, bob, desk):
    """Alice on desk 2 logs in on desk, where Bob is: Bob replaced, Alice moved; each
    change with its audit row, NOTIFY, config version and emergency marks."""
    svc = runtime.service
    desk2 = make_device(runtime, mac="00:15:65:00:00:02", extension="8002")
    assert svc.login(desk2.id, "101", "1234", call("8002", "192.0.2.12:5060")).outcome \
        is Outcome.LOGGED_IN
    assert svc.login(desk.id, "102", "4321", call("8001", "192.0.2.11:5060")).outcome \
        is Outcome.LOGGED_IN
    OutboxNotify.delete().execute()
    EmergencySync.update(pending=False).execute()
    result = svc.login(desk.id, "101", "1234", call("102", "192.0.2.13:5060"))
    assert result.outcome is Outcome.LOGGED_IN
    active = list(Session.select().where(Session.ended_at.is_null()))
    assert [(s.user_id, s.device_id) for s in active] == [(alice.id, desk.id)]
    ended = {s.end_reason for s in Session.select().where(Session.ended_at.is_null(False))}
    assert ended == {"moved", "replaced"}
    # The NOTIFYs: desk (registered as Bob until it fetches) at the call's address,
    # desk 2 (registered as Alice) at its own.
    notifies = {(n.device_id, n.endpoint, n.contact_uri, n.config_version)
                for n in OutboxNotify.select()}
    assert notifies == {(desk.id, "102", "sip:102@192.0.2.13:5060", 3),
                        (desk2.id, "101", "sip:101@192.0.2.12:5060", 3)}
    assert Device.get_by_id(desk.id).last_address == "192.0.2.13:5060"
    actions = [a.action for a in AuditEvent.select().order_by(AuditEvent.id)][-3:]
    assert sorted(actions) == ["login", "logout", "logout"]
    login = AuditEvent.select().where(AuditEvent.action == "login").order_by(
        AuditEvent.id.desc()).first()
    [new] = active
    assert f'"session": {new.id}' in login.detail and '"replaced": "102"' in login.detail
    marked = {m.endpoint for m in EmergencySync.select().where(EmergencySync.pending)}
    assert marked == {"101", "102", "8001", "8002"}
    assert LoginAttempt.select().where(LoginAttempt.result == "ok").count() == 3


def test_wrong_pin_that_locks_writes_the_lockout_in_the_same_statement(runtime, alice, desk):
    svc = runtime.service
    failures = runtime.config.policy.lockout_failures
    results = [svc.login(desk.id, "101", "0000", call("8001", "")) for _ in range(failures)]
    assert [r.locked_out for r in results] == [False] * (failures - 1) + [True]
    assert AuditEvent.select().where(AuditEvent.action == "lockout").count() == 1
    assert svc.login(desk.id, "101", "1234", call("8001", "")).outcome is Outcome.LOCKED


def test_constants_are_written_into_the_sql_only_when_plainly_quotable():
    sql, slots = _inline_constants(
        "INSERT INTO t (a, b, c, d, e, f) VALUES (%s, %s, %s, %s, %s, %s)",
        [("name", None), (None, "pending"), (None, 0), (None, None), (None, "it's"),
         (None, True)])
    assert sql == "INSERT INTO t (a, b, c, d, e, f) VALUES (%s, 'pending', 0, NULL, %s, true)"
    assert slots == [("name", None), (None, "it's")]


def test_pooled_connection_killed_while_idle_is_replaced_on_first_use(runtime, alice, desk):
    """The pool hands connections out without asking the server; one the server dropped
    meanwhile fails its first statement (outside a transaction: the plain read, and the
    login's BEGIN + locks) and is replaced there, the statement retried."""
    if is_sqlite(runtime.db):
        pytest.skip("PostgreSQL's connection pool")
    import psycopg2

    db, svc = runtime.db, runtime.service
    ctx = call("8001", "192.0.2.10:5060")

    def kill_pooled_connection() -> None:
        backend = db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
        db.close()  # back to the pool
        other = psycopg2.connect(**db.connect_params, database=db.database)
        other.autocommit = True
        other.cursor().execute("SELECT pg_terminate_backend(%s)", (backend,))
        other.close()

    kill_pooled_connection()
    phone = svc.identify_phone(ctx)
    assert phone.id == desk.id
    kill_pooled_connection()
    assert svc.login(desk.id, "101", "1234", ctx, SwitchPin("1234")).outcome \
        is Outcome.LOGGED_IN
    assert Session.select().where(Session.ended_at.is_null()).count() == 1
