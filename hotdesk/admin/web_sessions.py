"""Signed-in browsers of the web admin, kept on the server.

The session cookie carries only a random session id (256 bits); the database keeps its
SHA-256. Signing out deletes the row, so a copied cookie is dead afterwards; a password
change or a disabled admin deletes all of that admin's rows (hotdesk.admin.admins).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from peewee import Database

from hotdesk.admin.admins import digest
from hotdesk.store.db import write_transaction
from hotdesk.store.models import Admin, AdminWebSession, utcnow

# last_seen_at is written at most this often per session, not on every page.
TOUCH_EVERY = timedelta(seconds=60)


def start(db: Database, admin: Admin, lifetime: timedelta, address: str = "",
          now: datetime | None = None) -> str:
    """A new session for ``admin``; returns the id to put into the cookie."""
    now = now or utcnow()
    key = secrets.token_urlsafe(32)
    with write_transaction(db):
        AdminWebSession.delete().where(AdminWebSession.expires_at <= now).execute()
        AdminWebSession.create(admin=admin, key_hash=digest(key), created_at=now,
                               last_seen_at=now, expires_at=now + lifetime,
                               address=address[:100])
    return key


def admin_for(key: str, now: datetime | None = None) -> Admin | None:
    """The admin signed in with session id ``key``, if the session is alive."""
    if not key or not isinstance(key, str) or len(key) > 100:
        return None
    now = now or utcnow()
    row = (AdminWebSession.select(AdminWebSession, Admin).join(Admin)
           .where(AdminWebSession.key_hash == digest(key)).first())
    if row is None or row.expires_at <= now or row.admin.disabled:
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        (AdminWebSession.update(last_seen_at=now)
         .where(AdminWebSession.id == row.id).execute())
    return row.admin


def end(db: Database, key: str) -> bool:
    """Sign out: the session id stops working everywhere. True if it was alive."""
    if not key or not isinstance(key, str):
        return False
    with write_transaction(db):
        return AdminWebSession.delete().where(
            AdminWebSession.key_hash == digest(key)).execute() > 0
