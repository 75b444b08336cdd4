"""The writes of one login or logout, sent to PostgreSQL as one statement.

A login on PostgreSQL is then four round trips inside its transaction: lock the user,
lock the phones, read what the rules decide on, write; :class:`CallTransaction` sends
BEGIN with the first and COMMIT with the last (several statements in one simple
query), so there are no round trips for them.

On PostgreSQL every statement is a round trip and costs the client ~40 µs of CPU in
the driver alone; a login writes a dozen rows (session, attempt, audit, outbox,
config versions, emergency marks). :class:`CallWrites` collects them inside the
caller's transaction and :meth:`CallWrites.flush` sends them as one statement of
data-modifying CTEs, each the same compiled statement (hotdesk.store.compiled) a
single write would run. On SQLite (in-process, no round trip) each write runs at once,
exactly as before.

Rules PostgreSQL imposes on one statement, kept here:
* a row is changed at most once (two UPDATEs of one row: only one takes effect), so
  a phone's config bump and its new address are one UPDATE, and emergency marks are
  one upsert per account;
* the sub-statements see one snapshot and run in no set order, so the new session
  (which the partial unique index "one active session per phone" checks at once) is
  inserted only after the closes have run: its CTE reads theirs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from peewee import Database, Field

from hotdesk.calls import queries
from hotdesk.notify import outbox
from hotdesk.store import audit
from hotdesk.store.compiled import Compiled, inserted_id
from hotdesk.store.db import is_sqlite, write_transaction
from hotdesk.store.models import Device, Session
from hotdesk.switch import emergency

# A phone's config bump and/or new address: one UPDATE per phone and statement.
_DEVICE = {
    (True, False): queries.BUMP_CONFIG,
    (False, True): queries.NOTE_ADDRESS,
    (True, True): Compiled(
        lambda device, address: Device.update(config_version=Device.config_version + 1,
                                              last_address=address)
        .where(Device.id == device), device=Device.id, address=Device.last_address),
}
CLOSE_RETURNING = Compiled(
    lambda session, now, reason: Session.update(ended_at=now, end_reason=reason)
    .where(Session.id == session).returning(Session.id),
    session=Session.id, now=Session.ended_at, reason=Session.end_reason)
_SESSION_FIELDS: tuple[Field, ...] = (
    Session.id, Session.tenant, Session.device, Session.user, Session.started_at,
    Session.expires_at, Session.end_reason, Session.call_id)
_PG_TYPES = {"INT": "integer", "AUTO": "integer", "DATETIME": "timestamp",
             "VARCHAR": "varchar", "TEXT": "text"}


def _session_insert_after(closes: list[str]) -> str:
    """INSERT of a session with a given id that runs after the CTEs ``closes``."""
    columns = ", ".join(f'"{f.column_name}"' for f in _SESSION_FIELDS)
    values = ", ".join(f"%s::{_PG_TYPES[f.field_type]}" for f in _SESSION_FIELDS)
    after = " + ".join(f'(SELECT count(*) FROM "{name}")' for name in closes) or "0"
    return (f'INSERT INTO "{Session._meta.table_name}" ({columns}) SELECT {values} '
            f"WHERE {after} >= 0")


class CallWrites:
    """Writes of one transaction; deferred to :meth:`flush` on PostgreSQL."""

    def __init__(self, db: Database, last: Callable[[str, list[Any]], Any] | None = None) -> None:
        self.db = db
        self.last = last or db.execute_sql  # how the one statement is sent
        self.deferred = not is_sqlite(db)
        self._parts: list[tuple[str, list[Any]]] = []
        self._closes: list[str] = []
        self._devices: dict[int, tuple[bool, str | None]] = {}
        self._marked: set[tuple[int, str]] = set()

    def _run(self, statement: Compiled, **values: Any) -> Any:
        if not self.deferred:
            return statement.run(self.db, **values)
        self._parts.append(statement.bind(self.db, **values))
        return None

    def device(self, device_id: int, bump: bool = False, address: str | None = None) -> None:
        """Bump the phone's config version and/or record the address it called from."""
        if not self.deferred:
            if address is not None:
                queries.NOTE_ADDRESS.run(self.db, device=device_id, address=address)
            if bump:
                queries.BUMP_CONFIG.run(self.db, device=device_id)
            return
        bumped, noted = self._devices.get(device_id, (False, None))
        if bump and bumped:
            raise ValueError("a phone's config is bumped once per statement")
        self._devices[device_id] = (bump or bumped, address if address is not None else noted)

    def close_session(self, session_id: int, now: datetime, reason: str) -> None:
        if not self.deferred:
            queries.CLOSE_SESSION.run(self.db, session=session_id, now=now, reason=reason)
            return
        self._closes.append(f"w{len(self._parts)}")
        self._run(CLOSE_RETURNING, session=session_id, now=now, reason=reason)

    def insert_session(self, new_id: int | None, *, tenant: int, device: int, user: int,
                       started: datetime, expires: datetime | None, call_id: str) -> int:
        """The new session's id: ``new_id`` reserved beforehand (PostgreSQL, see
        :func:`hotdesk.calls.queries.login_state`), or the one SQLite assigned."""
        if not self.deferred or new_id is None:
            return inserted_id(self.db, queries.INSERT_SESSION.run(
                self.db, tenant=tenant, device=device, user=user, started=started,
                expires=expires, call_id=call_id))
        values = (new_id, tenant, device, user, started, expires, "", call_id)
        params = [f.db_value(v) for f, v in zip(_SESSION_FIELDS, values, strict=True)]
        self._parts.append((_session_insert_after(self._closes), params))
        return new_id

    def attempt(self, success: bool, **values: Any) -> None:
        self._run(queries.INSERT_ATTEMPT[success], **values)

    def audit(self, action: str, **values: Any) -> None:
        self._run(audit.INSERT, **audit.row(action, **values))

    def outbox(self, values: dict[str, Any]) -> None:
        """A check-sync row (:func:`hotdesk.notify.outbox.row`)."""
        self._run(outbox.INSERT, **values)

    def mark(self, tenant_id: int, endpoints: list[str], now: datetime) -> None:
        """Emergency marks (hotdesk.switch.emergency.mark): one upsert per account."""
        for endpoint in endpoints:
            if (tenant_id, endpoint) in self._marked:
                continue
            self._marked.add((tenant_id, endpoint))
            self._run(emergency.MARK, tenant=tenant_id, endpoint=endpoint, now=now)

    def flush(self) -> None:
        """PostgreSQL: send everything collected as one statement (nothing on SQLite)."""
        if not self.deferred:
            return
        for device_id, (bump, address) in self._devices.items():
            statement = _DEVICE[(bump, address is not None)]
            values = {"device": device_id}
            if address is not None:
                values["address"] = address
            self._parts.append(statement.bind(self.db, **values))
        self._devices.clear()
        if not self._parts:
            return
        ctes = ", ".join(f'"w{i}" AS ({sql})' for i, (sql, _) in enumerate(self._parts))
        params = [p for _, part in self._parts for p in part]
        self._parts, self._closes = [], []
        self.last(f"WITH {ctes} SELECT 1", params)


class CallTransaction:
    """The transaction of one login: ``with CallTransaction(db) as tx``; statements go
    through :meth:`execute`, the writes collect in ``tx.writes``.

    SQLite: :func:`hotdesk.store.db.write_transaction` (BEGIN IMMEDIATE). PostgreSQL:
    BEGIN is sent with the first statement, COMMIT with the writes. The first statement
    runs before peewee counts a transaction, so a pooled connection found dead is
    replaced and the statement retried like any other (nothing had happened yet);
    every later statement runs inside the transaction, where an error rolls back.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self.writes = CallWrites(db, last=self._finish)
        self._sqlite: contextlib.AbstractContextManager[None] | None = (
            write_transaction(db) if is_sqlite(db) else None)
        self._begun = self._ended = False

    def __enter__(self) -> CallTransaction:
        if self._sqlite is not None:
            self._sqlite.__enter__()
        return self

    def execute(self, sql: str, params: Any) -> Any:
        if self._sqlite is not None or self._begun:
            return self.db.execute_sql(sql, params)
        try:
            cursor = self.db.execute_sql("BEGIN; " + sql, params)
        except Exception:
            self._rollback()
            raise
        self._begun = True
        self.db.push_transaction(self)
        return cursor

    def _finish(self, sql: str, params: list[Any]) -> None:
        if self._sqlite is not None or not self._begun:
            self.db.execute_sql(sql, params)  # one statement on its own is atomic too
            return
        self.db.execute_sql(sql + "; COMMIT", params)
        self._ended = True

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if self._sqlite is not None:
            return bool(self._sqlite.__exit__(exc_type, exc, tb))
        if not self._begun:
            return False
        try:
            if exc_type is not None:
                self._rollback()
            elif not self._ended:
                self.db.commit()  # nothing was written (a refusal before the rules)
        except Exception:
            self._rollback()
            raise
        finally:
            self.db.pop_transaction()
        return False

    def _rollback(self) -> None:
        try:
            self.db.rollback()
        except Exception:  # noqa: BLE001 - a dead connection cannot roll back; nothing to
            pass  # undo there: the server rolled back when it went
