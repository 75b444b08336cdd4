"""Background user imports for the import page: each job is a durable row set
(hotdesk.admin.import_jobs) applied by a thread of this process. Any ``hotdesk web``
process sharing the database can show a job's progress; one whose process stopped is
taken over when its lease runs out (``resume_in_background``, started by ``hotdesk web``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from hotdesk.admin import import_jobs, importers
from hotdesk.notify.outbox import worker_id
from hotdesk.runtime import Runtime
from hotdesk.store.db import close_quietly
from hotdesk.store.models import Tenant

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobView:
    """One job as the pages see it (read from the database each time)."""

    id: str
    tenant_id: int
    report: dict[str, object]

    def as_dict(self) -> dict[str, object]:
        return {k: v for k, v in self.report.items() if k != "tenant_id"}


class ImportJobs:
    def __init__(self) -> None:
        self.owner = f"{worker_id()}:web"
        self._stop = threading.Event()
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def get(self, job_id: str) -> JobView | None:
        report = import_jobs.report(job_id)
        if report is None:
            return None
        return JobView(job_id, int(report["tenant_id"]), report)  # type: ignore[call-overload]

    def start(self, rt: Runtime, tenant: Tenant, admin_id: int, actor: str,
              parsed: importers.ParseResult, enable_hotdesk: bool) -> JobView:
        job = import_jobs.create(rt.db, tenant, admin_id, actor, parsed, enable_hotdesk,
                                 store_sip_passwords=rt.config.switch.credentials != "switch")
        self._launch(rt, job.id)
        view = self.get(job.id)
        assert view is not None
        return view

    def _launch(self, rt: Runtime, job_id: str, take_over: str | None = None) -> bool:
        if not import_jobs.claim(job_id, self.owner, take_over=take_over):
            return False
        thread = threading.Thread(target=self._run, args=(rt, job_id), daemon=True,
                                  name=f"import-{job_id}")
        with self._lock:
            self._threads[job_id] = thread
        thread.start()
        return True

    def _run(self, rt: Runtime, job_id: str) -> None:
        try:
            import_jobs.run(rt, job_id, self.owner, should_stop=self._stop.is_set)
        finally:
            with self._lock:
                self._threads.pop(job_id, None)
            close_quietly(rt.db)  # this thread's connection ends with the job

    def resume_orphans(self, rt: Runtime) -> list[str]:
        """Take over every job whose process stopped; returns their ids."""
        resumed = [job_id for job_id, holder in import_jobs.orphaned()
                   if job_id not in self._threads and self._launch(rt, job_id, holder)]
        for job_id in resumed:
            log.info("resuming user import %s where it stopped", job_id)
        return resumed

    def resume_in_background(self, rt: Runtime, every: float | None = None) -> None:
        """Check for orphaned jobs now and then every ``every`` seconds (half a lease)."""
        interval = every if every is not None else import_jobs.LEASE.total_seconds() / 2

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.resume_orphans(rt)
                    import_jobs.prune()
                except Exception:  # a database hiccup: try again next round
                    log.exception("checking for interrupted imports failed")
                finally:
                    close_quietly(rt.db)
                self._stop.wait(interval)

        threading.Thread(target=loop, name="import-resume", daemon=True).start()

    def stop(self, timeout: float = 10.0) -> None:
        """Let running jobs finish their current row and stop (they resume later)."""
        self._stop.set()
        for thread in list(self._threads.values()):
            thread.join(timeout)
