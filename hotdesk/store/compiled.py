"""Queries written once with peewee and turned into SQL once, for the login path.

Building a peewee query's SQL costs far more CPU than running it: a one-row SELECT of
a wide table is ~450 µs to build and ~10 µs to execute on SQLite. The login path runs
the same dozen statements for every call, so each is compiled once per database
dialect and afterwards only its values are bound. The query stays readable peewee.

How: the query is built with a unique stand-in value per parameter, its SQL and
parameter list are taken once, and each position that holds a stand-in is bound to
the caller's value (converted by the same field, as peewee would) at every run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from peewee import (
    AutoField,
    BooleanField,
    CharField,
    Database,
    DateTimeField,
    Field,
    ForeignKeyField,
    IntegerField,
    TextField,
)

_BASE_TIME = datetime(1901, 2, 3, 4, 5, 6)


def _stand_in(field: Field, index: int) -> Any:
    """A value no real parameter can have, of the type ``field`` converts."""
    if isinstance(field, AutoField | IntegerField | ForeignKeyField):
        return -917_000_000 - index
    if isinstance(field, DateTimeField):
        return _BASE_TIME + timedelta(microseconds=index + 1)
    if isinstance(field, CharField | TextField):
        return f"\x01compiled-parameter-{index}\x01"
    if isinstance(field, BooleanField):
        raise TypeError("a boolean cannot be told apart from a constant; write it inline")
    raise TypeError(f"no stand-in for {type(field).__name__}")


class Compiled:
    """``Compiled(lambda did: Device.select(...).where(Device.id == did), did=Device.id)``;
    ``run(db, did=5)`` executes it and returns the cursor."""

    def __init__(self, build: Callable[..., Any], **fields: Field) -> None:
        self.build = build
        self.fields = fields
        self._sql: dict[type, tuple[str, list[tuple[str | None, Any]]]] = {}
        self._lock = threading.Lock()

    def _compile(self, db: Database) -> tuple[str, list[tuple[str | None, Any]]]:
        stand_ins = {name: _stand_in(f, i) for i, (name, f) in enumerate(self.fields.items())}
        converted = {name: self.fields[name].db_value(v) for name, v in stand_ins.items()}
        sql, params = self.build(**stand_ins).sql()
        slots: list[tuple[str | None, Any]] = []
        for param in params:
            name = next((n for n, c in converted.items() if c == param), None)
            slots.append((name, None) if name is not None else (None, param))
        missing = set(self.fields) - {n for n, _ in slots if n}
        if missing:
            raise ValueError(f"parameters never used by the query: {sorted(missing)}")
        return sql, slots

    def bound(self, db: Database, **values: Any) -> tuple[str, list[Any]]:
        """The SQL and its parameters for ``values``, e.g. for ``Model.raw`` when the
        rows are wanted as model instances."""
        compiled = self._sql.get(type(db))
        if compiled is None:
            with self._lock:
                compiled = self._sql.setdefault(type(db), self._compile(db))
        sql, slots = compiled
        return sql, [self.fields[name].db_value(values[name]) if name else constant
                     for name, constant in slots]

    def run(self, db: Database, **values: Any) -> Any:
        return db.execute_sql(*self.bound(db, **values))

    def one(self, db: Database, **values: Any) -> Sequence[Any] | None:
        """The first row as a tuple, or None."""
        return self.run(db, **values).fetchone()

    def rows(self, db: Database, **values: Any) -> Iterator[Sequence[Any]]:
        yield from self.run(db, **values).fetchall()


def inserted_id(db: Database, cursor: Any) -> int:
    """The id of the row a compiled INSERT wrote (PostgreSQL: its RETURNING clause)."""
    row = cursor.fetchone() if cursor.description else None
    return int(row[0]) if row else int(cursor.lastrowid)
