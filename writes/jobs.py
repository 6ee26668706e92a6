"""Writes run one at a time on a thread of their own, in the order they came, as jobs with ids.

A request that writes submits a job and gets it back at once; whoever waits for the result
awaits the job's future instead of holding a server worker on a lock, so searches are never
queued behind writes. At most `max_queued` jobs wait; one more is refused at once
(`WriteQueueFull`) rather than waiting without bound. Finished jobs are remembered (the newest
`KEEP_FINISHED`) so that a client can ask how its write went.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

KEEP_FINISHED = 200
JobState = Literal["queued", "running", "done", "failed"]
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


class WriteQueue:
    def __init__(self, max_queued: int) -> None:
        self.max_queued = max_queued
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="policyqa-write")
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._stamp = _now().strftime("%Y%m%d%H%M%S")

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
        job.future = self._executor.submit(self._run, job, work)
        return job

    def _run(self, job: Job, work: Callable[[], Any]) -> Any:
        job.state, job.started = "running", _now()
        try:
            job.result = work()
        except Exception as exc:
            log.warning("write job %s failed: %s", job.id, exc, exc_info=True)
            job.state, job.error = "failed", exc
            raise
        finally:
            job.finished = _now()
        job.state = "done"
        return job.result

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        """Newest first."""
        with self._lock:
            return list(reversed(self._jobs.values()))

    def _forget_old(self) -> None:
        finished = [j.id for j in self._jobs.values() if j.state in ("done", "failed")]
        for job_id in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[job_id]

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

