"""Database connections stay bounded however many calls are in progress (PostgreSQL).

Calls spend nearly all their time in prompts; a call thread that held its connection
through the PIN prompt made 500 calls need 500 PostgreSQL connections (the server's
default limit is 100). Connections are counted by the server itself (pg_stat_activity).
"""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from esl_handlers.outbound import EslServer
from hotdesk.admin.inventory import DeviceSpec, add_device, add_user, default_tenant
from hotdesk.runtime import Runtime, start
from hotdesk.settings import EslConfig
from hotdesk.store.db import is_sqlite
from hotdesk.store.models import Session
from tests.fakes.freeswitch import CallSpec, FakeCall

CALLS = 12
SLOTS = 2


def backends(conn) -> set[int]:  # type: ignore[no-untyped-def]
    with conn.cursor() as cur:
        cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid()")
        return {row[0] for row in cur.fetchall()}


def test_calls_waiting_for_digits_hold_no_connection(runtime: Runtime):
    if is_sqlite(runtime.db):
        pytest.skip("counts PostgreSQL server connections")
    import psycopg2

    tenant = default_tenant()
    for n in range(CALLS):
        add_user(runtime.db, tenant, f"5{n:03d}", hotdesk=True)
        add_device(runtime.db, tenant, DeviceSpec(mac=f"00:15:65:02:00:{n:02x}",
                                                  extension=f"9{n:03d}", sip_password="x"))
    cfg = dataclasses.replace(
        runtime.config,
        database=dataclasses.replace(runtime.config.database, max_connections=SLOTS + 1),
        esl=dataclasses.replace(EslConfig(), db_slots=SLOTS))
    runtime.db.close()
    rt = start(cfg)  # a pool of db_slots + 1 connections, sized from the config
    url = cfg.database.url
    sampler = psycopg2.connect(url)
    sampler.autocommit = True
    before = backends(sampler)
    server = EslServer(rt, "127.0.0.1:0")
    server.start()
    peak = 0
    calls = [FakeCall(CallSpec(endpoint=f"9{n:03d}", extension=f"5{n:03d}", digits=["1234"],
                               keying_seconds=1.5, linger_scale=0.0,
                               vm_passwords={f"5{n:03d}@127.0.0.1": "1234"}))
             for n in range(CALLS)]
    threads = [threading.Thread(target=c.run, args=(server.address, 60)) for c in calls]
    try:
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            peak = max(peak, len(backends(sampler) - before))
            time.sleep(0.01)
        for t in threads:
            t.join(60)
    finally:
        server.stop()
        sampler.close()
        rt.db.close_all()
    results = [dict(c.executed()).get("set") for c in calls]
    assert results == ["HOTDESK_RESULT=ok"] * CALLS
    assert Session.select().where(Session.ended_at.is_null()).count() == CALLS
    # Every call sat 1.5 s in its PIN prompt at the same time; only the steps between
    # prompts (at most db_slots at once) held a connection.
    assert 1 <= peak <= SLOTS, f"{peak} connections for {CALLS} calls in progress"



def test_a_slow_ami_notify_does_not_hold_a_call_step_thread(runtime, alice, bob, desk, desk2,
                                                            tmp_path, monkeypatch):
    """With one database thread for calls, a NOTIFY that Asterisk is slow to accept must
    not park that thread: the next caller's steps run while the send is still waiting."""
    from hotdesk_agi.ami import AmiNotifySender
    from tests.test_wiring import make_driver, wait_for, with_config

    sending, send_done, release = threading.Event(), threading.Event(), threading.Event()
    original = AmiNotifySender.send_many_async  # the drain's path (a batch, one write)

    async def slow_send(self, targets):  # type: ignore[no-untyped-def]
        import asyncio

        sending.set()
        await asyncio.to_thread(release.wait, 10)
        send_done.set()
        return await original(self, targets)

    monkeypatch.setattr(AmiNotifySender, "send_many_async", slow_send)
    rt = with_config(runtime, agi=dataclasses.replace(runtime.config.agi, db_threads=1))
    with make_driver("asterisk", rt, tmp_path) as drv:
        assert wait_for(drv.control_connected)
        assert drv.call("login", "8001", "101", ("1234",), "127.0.0.1:5071").result == "ok"
        assert wait_for(sending.is_set)
        assert drv.call("login", "8002", "102", ("4321",), "127.0.0.1:5072").result == "ok"
        finished_during_send = not send_done.is_set()
        release.set()
        assert len(drv.notifies(2, timeout=10)) == 2
    assert finished_during_send, "the second call waited for the first call's NOTIFY"
