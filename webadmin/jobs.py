"""Background user imports, polled by the import page.

Jobs live in the memory of the ``hotdesk web`` process that started them (waitress runs
one process); with several processes, poll the same one (sticky sessions) or use the
CLI. Finished jobs are kept for an hour so the summary can be re-read.
"""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hotdesk.admin import importers
from hotdesk.runtime import Runtime
from hotdesk.store.db import close_quietly
from hotdesk.store.models import Tenant, utcnow

log = logging.getLogger(__name__)


@dataclass
class ImportJob:
    id: str
    tenant_id: int
    admin_id: int
    total: int
    problems: list[importers.Problem]
    done: int = 0
    state: str = "running"  # running | finished | error
    error: str = ""
    summary: importers.ImportSummary | None = None
    started_at: datetime = field(default_factory=utcnow)

    def as_dict(self) -> dict[str, object]:
        s = self.summary
        return {
            "id": self.id, "state": self.state, "done": self.done, "total": self.total,
            "error": self.error,
            "problems": [{"line": p.line, "message": p.message} for p in self.problems],
            "created": s.created if s else [], "updated": s.updated if s else [],
            "skipped": [{"what": w, "why": y} for w, y in s.skipped] if s else [],
        }


class ImportJobs:
    def __init__(self) -> None:
        self._jobs: dict[str, ImportJob] = {}
        self._lock = threading.Lock()

    def get(self, job_id: str) -> ImportJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def start(self, rt: Runtime, tenant: Tenant, admin_id: int, actor: str,
              parsed: importers.ParseResult, enable_hotdesk: bool) -> ImportJob:
        job = ImportJob(id=secrets.token_urlsafe(12), tenant_id=tenant.id, admin_id=admin_id,
                        total=len(parsed.records), problems=parsed.problems)
        with self._lock:
            cutoff = utcnow() - timedelta(hours=1)
            for key in [k for k, j in self._jobs.items()
                        if j.state != "running" and j.started_at < cutoff]:
                del self._jobs[key]
            self._jobs[job.id] = job
        thread = threading.Thread(target=self._run, name=f"import-{job.id}", daemon=True,
                                  args=(rt, job, actor, parsed.records, enable_hotdesk))
        thread.start()
        return job

    @staticmethod
    def _run(rt: Runtime, job: ImportJob, actor: str, records: list[importers.ImportRecord],
             enable_hotdesk: bool) -> None:
        def progress(done: int, total: int) -> None:
            job.done = done

        try:
            tenant = Tenant.get_by_id(job.tenant_id)
            job.summary = importers.apply_import(rt.db, tenant, records,
                                                 enable_hotdesk=enable_hotdesk, actor=actor,
                                                 progress=progress,
                                                 store_sip_passwords=(
                                                     rt.config.switch.credentials != "switch"))
            job.state = "finished"
        except Exception as exc:  # report it on the page; the process stays up
            log.exception("user import %s failed", job.id)
            job.state, job.error = "error", f"{type(exc).__name__}: {exc}"
        finally:
            close_quietly(rt.db)  # this thread's connection ends with the job
