"""How many passwords may be tried: a budget per username and per client address, kept in
the database so every ``hotdesk web`` thread and process sharing it counts together.

A try is charged *before* its password is checked, inside a write transaction that
serialises with every other try (SQLite ``BEGIN IMMEDIATE``, PostgreSQL a table lock),
so 40 parallel sign-ins test at most ``max_failures`` passwords, not "5 plus whatever
was in flight". A wrong password leaves its charge; a right one takes it back and
clears the username's failures. A process that dies mid-check leaves the charge too
(fails closed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from peewee import Database

from hotdesk.store.db import is_sqlite, write_transaction
from hotdesk.store.models import SigninAttempt, utcnow

MAX_KEY = 200


@dataclass(frozen=True)
class Charge:
    """The rows one try was charged to; handed back on success."""

    ids: tuple[int, ...]
    username_key: str


def _keys(username: str, address: str) -> tuple[str, str]:
    return f"u:{username.lower()}"[:MAX_KEY], f"a:{address}"[:MAX_KEY]


@dataclass(frozen=True)
class SharedSigninThrottle:
    max_failures: int = 5
    window: timedelta = timedelta(minutes=15)

    def charge(self, db: Database, username: str, address: str,
               now: datetime | None = None) -> Charge | None:
        """Take one try from the username's and the address's budget; None = no budget
        left (refuse without checking the password)."""
        now = now or utcnow()
        cutoff = now - self.window
        keys = _keys(username, address)
        with write_transaction(db):
            if not is_sqlite(db):
                # Rows that do not exist yet cannot be locked with FOR UPDATE; readers
                # (SELECT) still pass, only concurrent charges queue.
                db.execute_sql(f"LOCK TABLE {SigninAttempt._meta.table_name} "
                               "IN SHARE ROW EXCLUSIVE MODE")
            SigninAttempt.delete().where(SigninAttempt.at < cutoff).execute()
            for key in keys:
                used = (SigninAttempt.select().where((SigninAttempt.key == key)
                                                     & (SigninAttempt.at >= cutoff)).count())
                if used >= self.max_failures:
                    return None
            ids = tuple(SigninAttempt.insert(key=key, at=now).execute() for key in keys)
        return Charge(ids, keys[0])

    def succeeded(self, db: Database, charge: Charge) -> None:
        """The password was right: refund this try and forget the username's failures."""
        with write_transaction(db):
            SigninAttempt.delete().where(SigninAttempt.id.in_(list(charge.ids))
                                         | (SigninAttempt.key == charge.username_key)).execute()
