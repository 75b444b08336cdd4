"""User imports as durable jobs: the parsed rows are stored first, then applied one per
transaction together with the row's outcome and the job's count, so at any moment the
database says exactly what was imported. A job whose process died (a restart of
``hotdesk web``) is taken over when its lease runs out and continues where it stopped.

PINs and SIP passwords wait in the row's payload only until the row is applied, then
they are blanked (the user row holds the hash / the password from then on).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import datetime, timedelta

from peewee import Database

from hotdesk.admin import importers, usecases
from hotdesk.admin.importers import ImportRecord, ParseResult
from hotdesk.runtime import Runtime
from hotdesk.store.db import write_transaction
from hotdesk.store.models import ImportJob, ImportRow, Tenant, User, utcnow

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=30)
_BATCH = 200


def create(db: Database, tenant: Tenant, admin_id: int | None, actor: str,
           parsed: ParseResult, enable_hotdesk: bool,
           store_sip_passwords: bool = True) -> ImportJob:
    """Store the job and every row before anything is applied. ``store_sip_passwords``
    false (``[switch] credentials = switch``): the source's passwords are not kept."""
    twice = importers.duplicates(parsed.records)
    records = (parsed.records if store_sip_passwords else
               [replace(r, sip_password="") for r in parsed.records])
    with db.atomic():
        job = ImportJob.create(
            id=secrets.token_urlsafe(12), tenant=tenant, admin_id=admin_id, actor=actor,
            enable_hotdesk=enable_hotdesk, total=len(parsed.records), done=len(twice),
            problems_json=json.dumps([[p.line, p.message] for p in parsed.problems]))
        rows = [{"job": job.id, "seq": i, "extension": r.extension, "line": r.line,
                 "payload": "{}" if i in twice else json.dumps(asdict(r)),
                 "outcome": "skipped" if i in twice else "",
                 "message": importers.DUPLICATE if i in twice else ""}
                for i, r in enumerate(records)]
        for start in range(0, len(rows), 500):
            ImportRow.insert_many(rows[start:start + 500]).execute()
    return job


def claim(job_id: str, owner: str, now: datetime | None = None,
          take_over: str | None = None) -> bool:
    """Take the job for ``owner`` unless another live process holds it; ``take_over``
    names a holder known to be dead (see :func:`orphaned`)."""
    now = now or utcnow()
    free = (ImportJob.lease_until.is_null() | (ImportJob.lease_until < now)
            | (ImportJob.owner == owner))
    if take_over:
        free = free | (ImportJob.owner == take_over)
    return bool(ImportJob.update(owner=owner, lease_until=now + LEASE)
                .where((ImportJob.id == job_id) & (ImportJob.state == "running") & free)
                .execute())


def _dead_here(owner: str) -> bool:
    """True when ``owner`` ("host:pid:…") was a process of this host that has exited,
    so a restarted web process need not wait for its predecessor's lease to run out."""
    host, _, rest = owner.partition(":")
    pid = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def orphaned(now: datetime | None = None) -> list[tuple[str, str]]:
    """Running jobs nobody holds any more (lease run out, or their process on this host
    has exited), as (job id, the holder it had)."""
    now = now or utcnow()
    return [(j.id, j.owner) for j in ImportJob.select(ImportJob.id, ImportJob.owner,
                                                      ImportJob.lease_until)
            .where(ImportJob.state == "running")
            if j.lease_until is None or j.lease_until < now or _dead_here(j.owner)]


def run(rt: Runtime, job_id: str, owner: str,
        should_stop: Callable[[], bool] = lambda: False) -> str:
    """Apply the job's remaining rows while ``owner`` holds it; returns its state."""
    job = ImportJob.get_by_id(job_id)
    tenant = Tenant.get_by_id(job.tenant_id)
    try:
        while True:
            todo = list(ImportRow.select().where((ImportRow.job == job_id)
                                                 & (ImportRow.outcome == ""))
                        .order_by(ImportRow.seq).limit(_BATCH))
            if not todo:
                break
            for row in todo:
                if should_stop() or not _apply(rt, tenant, job, row, owner):
                    return ImportJob.get_by_id(job_id).state
        ImportJob.update(state="finished", finished_at=utcnow(), lease_until=None).where(
            (ImportJob.id == job_id) & (ImportJob.owner == owner)).execute()
    except Exception as exc:  # report it on the page; the process stays up
        log.exception("user import %s failed", job_id)
        ImportJob.update(state="error", error=f"{type(exc).__name__}: {exc}",
                         finished_at=utcnow()).where(ImportJob.id == job_id).execute()
    return ImportJob.get_by_id(job_id).state


def _apply(rt: Runtime, tenant: Tenant, job: ImportJob, row: ImportRow, owner: str) -> bool:
    """One row: the user, the row's outcome and the job's count commit together.
    False when the lease was lost (another process took the job over). An existing user
    is changed through the use case, so their phone follows (new password, disabled)."""
    record = ImportRecord(**json.loads(row.payload))

    def change(user: User, **fields: object) -> None:
        usecases.change_user(rt, user, actor=job.actor, **fields)  # type: ignore[arg-type]

    with write_transaction(rt.db):
        held = (ImportJob.update(done=ImportJob.done + 1, lease_until=utcnow() + LEASE)
                .where((ImportJob.id == job.id) & (ImportJob.owner == owner)).execute())
        if not held:
            return False
        outcome, why = importers.apply_record(rt.db, tenant, record, job.enable_hotdesk,
                                              job.actor, change=change)
        ImportRow.update(outcome=outcome, message=why, payload="{}").where(
            (ImportRow.id == row.id) & (ImportRow.outcome == "")).execute()
    return True


def report(job_id: str) -> dict[str, object] | None:
    """What the import page and its JSON show: state, counts, every row's outcome."""
    job = ImportJob.get_or_none(ImportJob.id == job_id)
    if job is None:
        return None
    created, updated, skipped = [], [], []
    for row in (ImportRow.select(ImportRow.extension, ImportRow.line, ImportRow.outcome,
                                 ImportRow.message)
                .where((ImportRow.job == job_id) & (ImportRow.outcome != ""))
                .order_by(ImportRow.seq)):
        if row.outcome == "created":
            created.append(row.extension)
        elif row.outcome == "updated":
            updated.append(row.extension)
        else:
            where = f"{row.extension}" + (f" (line {row.line})" if row.line else "")
            skipped.append({"what": where, "why": row.message})
    return {"id": job.id, "state": job.state, "done": job.done, "total": job.total,
            "error": job.error, "tenant_id": job.tenant_id,
            "problems": [{"line": line, "message": message}
                         for line, message in json.loads(job.problems_json)],
            "created": created, "updated": updated, "skipped": skipped}


def prune(older_than: timedelta = timedelta(days=7), now: datetime | None = None) -> int:
    """Forget finished jobs after a while (their audit rows stay)."""
    now = now or utcnow()
    old = [j.id for j in ImportJob.select(ImportJob.id)
           .where((ImportJob.state != "running") & (ImportJob.finished_at < now - older_than))]
    if old:
        ImportJob.delete().where(ImportJob.id.in_(old)).execute()
    return len(old)
