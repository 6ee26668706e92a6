"""Writes run one at a time on a thread of their own, in the order they came, as jobs with ids.

A request that writes submits a job and gets it back at once; whoever waits for the result
awaits the job's future instead of holding a server worker on a lock, so searches are never
queued behind writes. At most `max_queued` jobs wait; one more is refused at once
(`WriteQueueFull`) rather than waiting without bound. Finished jobs are remembered (the newest
`KEEP_FINISHED`) so that a client can ask how its write went. A server keeps them in a journal file
as well: after a restart, a job the server was running or had queued is reported `interrupted` (the
index is as the last finished write left it; a re-submitted upload reuses the clauses it had encoded).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

KEEP_FINISHED = 200
JobState = Literal["queued", "running", "done", "failed", "interrupted"]
INTERRUPTED = ("the server stopped before this write finished; the index is as the last finished write left it. "
               "Submit it again: clauses it had already encoded are reused")
# A failed job read back from the journal: its reason was answered while the server ran, and is not kept
# (an exception's text may name the server's folders).
FAILED = "the write failed; the index is unchanged"
log = logging.getLogger(__name__)


class WriteQueueFull(Exception):
    def __init__(self, waiting: int) -> None:
        super().__init__(f"{waiting} writes are already waiting; try again when they are done")
        self.waiting = waiting


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Job:
    id: str
    kind: str
    subject: list[str]  # the file names or document ids it writes
    state: JobState = "queued"
    submitted: datetime = field(default_factory=_now)
    started: datetime | None = None
    finished: datetime | None = None
    error: Exception | None = None
    result: Any = None
    future: Future = field(default_factory=Future, repr=False)
    stage: str | None = None  # while running: parsing, embedding, committing
    done: int | None = None  # files parsed, or characters embedded, of `total`
    total: int | None = None
    message: str | None = None  # why a job read back from the journal failed or was interrupted

    def record(self) -> dict:
        """What the journal keeps of the job (its result as JSON; its error as a message)."""
        result = self.result.model_dump(mode="json") if hasattr(self.result, "model_dump") else self.result
        return {"id": self.id, "kind": self.kind, "subject": self.subject, "state": self.state,
                "submitted": self.submitted.isoformat(), "started": self.started and self.started.isoformat(),
                "finished": self.finished and self.finished.isoformat(), "stage": self.stage, "done": self.done,
                "total": self.total, "result": result if isinstance(result, dict | str | None) else None,
                "message": self.message or (FAILED if self.error else None)}

    @classmethod
    def from_record(cls, record: dict) -> Job:
        times = {k: record[k] and datetime.fromisoformat(record[k]) for k in ("submitted", "started", "finished")}
        job = cls(**{**record, **times})
        job.future.set_result(job.result)
        if job.state in ("queued", "running"):
            job.state, job.finished, job.message = "interrupted", _now(), INTERRUPTED
        return job


class WriteQueue:
    def __init__(self, max_queued: int, journal: Path | None = None) -> None:
        self.max_queued = max_queued
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="policyqa-write")
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._stamp = _now().strftime("%Y%m%d%H%M%S")
        self._running: Job | None = None
        self._journal = journal
        if journal is not None and journal.is_file():
            for record in json.loads(journal.read_text(encoding="utf-8")):
                self._jobs[record["id"]] = Job.from_record(record)
            self._save()

    def submit(self, kind: str, subject: list[str], work: Callable[[], Any], limited: bool = True) -> Job:
        """Queue `work`; its return value becomes the job's result, its exception the job's error.

        `limited`: refused past `max_queued` waiting jobs (what clients ask for; the server's own
        follow-up jobs, such as merges, are not refused).
        """
        with self._lock:
            waiting = sum(j.state == "queued" for j in self._jobs.values())
            if limited and waiting >= self.max_queued:
                raise WriteQueueFull(waiting)
            job = Job(id=f"{self._stamp}-{next(self._ids):04d}", kind=kind, subject=subject)
            self._jobs[job.id] = job
            self._forget_old()
            self._save()
        job.future = self._executor.submit(self._run, job, work)
        return job

    def _run(self, job: Job, work: Callable[[], Any]) -> Any:
        job.state, job.started, self._running = "running", _now(), job
        self._save()
        try:
            job.result = work()
        except Exception as exc:
            log.warning("write job %s failed: %s", job.id, exc, exc_info=True)
            job.state, job.error = "failed", exc
            raise
        else:
            job.state = "done"
        finally:
            job.finished, job.stage, self._running = _now(), None, None
            self._save()
        return job.result

    def progress(self, stage: str, done: int | None = None, total: int | None = None) -> None:
        """Say how far the running job is (called from inside its work)."""
        job = self._running
        if job is not None:
            job.stage, job.done, job.total = stage, done, total
            self._save()

    def _save(self) -> None:
        """Write the journal (atomically: a crash leaves the previous one)."""
        if self._journal is None:
            return
        with self._lock:  # jobs change on the write thread and on request threads
            records = [j.record() for j in self._jobs.values()]
            self._journal.parent.mkdir(parents=True, exist_ok=True)
            # A name of its own: two queues (two apps over one folder) may write the journal at once.
            partial = self._journal.with_name(f".{self._journal.name}.{os.getpid()}-{id(self)}.partial")
            partial.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
            os.replace(partial, self._journal)

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        """Newest first."""
        with self._lock:
            return list(reversed(self._jobs.values()))

    def _forget_old(self) -> None:
        finished = [j.id for j in self._jobs.values() if j.state in ("done", "failed", "interrupted")]
        for job_id in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[job_id]

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

