"""Write jobs kept on disk: every server process sees the same jobs, and a restart loses none.

A job is one file, `<id>.json`, in the jobs folder; what it writes (an upload's files) is staged in
`<id>/` before its record exists, so a record never names inputs that are not there. Any process may
submit. One process at a time runs them: whoever holds the writer lock (`writer.lock`, an flock the
kernel releases when its holder dies, kill -9 included; the file holds the holder's process id). A holder takes first a job left `running` (its
process died in it: the job runs again from its staged inputs, which the write path makes idempotent)
and then the queued jobs, oldest first. Records are replaced atomically (a temporary file, then
rename), and after submission only the lock holder changes them, so no two processes write one record.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

JobState = Literal["queued", "running", "done", "failed"]
FINISHED = ("done", "failed")
KEEP_FINISHED = 200
# A job cut short this many times (its process died in it each time) is failed instead of run again: a write
# that kills its process must not kill every writer after it.
MAX_ATTEMPTS = 3
CUT_SHORT = {"error": "interrupted", "detail": None,
             "message": f"the server stopped in the middle of this write {MAX_ATTEMPTS} times; it is not run again "
                        "and the index is as the last finished write left it"}
RESCAN_SECONDS = 2.0
log = logging.getLogger(__name__)


class QueueFullError(Exception):
    def __init__(self, waiting: int) -> None:
        super().__init__(f"{waiting} writes are already waiting; try again when they are done")
        self.waiting = waiting


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class Job:
    id: str
    kind: str
    subject: list[str]  # the file names or document ids it writes
    params: dict[str, Any] = field(default_factory=dict)  # what its handler needs besides staged files
    state: JobState = "queued"
    submitted: str = field(default_factory=_now)
    started: str | None = None
    finished: str | None = None
    stage: str | None = None  # while running: parsing, embedding, committing
    done: int | None = None  # files parsed, or characters embedded, of `total`
    total: int | None = None
    attempts: int = 0  # times a writer started it (more than one: it was cut short before)
    result: dict | str | None = None  # its handler's answer, as JSON
    error: dict | None = None  # {"error", "message", "detail"}: why it failed

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED


class JobStore:
    """The jobs folder: submit, read, and (for the writer) take and update jobs."""

    def __init__(self, folder: Path, max_queued: int) -> None:
        self.folder = Path(folder)
        self.max_queued = max_queued
        self.folder.mkdir(parents=True, exist_ok=True)

    def submit(self, kind: str, subject: list[str], params: dict | None = None,
               files: list[tuple[str, bytes]] = (), limited: bool = True) -> Job:
        """Record a queued job, its `files` (name, bytes) staged first. `limited`: refused past `max_queued`
        waiting jobs (what clients ask for; the server's own follow-up jobs, such as merges, are not refused)."""
        if limited and (waiting := sum(j.state == "queued" for j in self.jobs())) >= self.max_queued:
            raise QueueFullError(waiting)
        job = Job(id=f"{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(4)}", kind=kind, subject=list(subject),
                  params=params or {})
        if files:
            staging = self.folder / f".{job.id}.partial"
            staging.mkdir()
            for name, content in files:
                (staging / name).write_bytes(content)
            staging.rename(self.staged(job))
        self.save(job)
        return job

    def staged(self, job: Job) -> Path:
        """The folder holding the job's staged input files."""
        return self.folder / job.id

    def save(self, job: Job) -> None:
        # Not `*.json` until renamed: `jobs()` must never read a record while it is being written.
        partial = self.folder / f".{job.id}.{os.getpid()}.{threading.get_native_id()}.partial"
        partial.write_text(json.dumps(asdict(job), ensure_ascii=False), encoding="utf-8")
        os.replace(partial, self.folder / f"{job.id}.json")

    def get(self, job_id: str) -> Job | None:
        if not job_id or "/" in job_id or job_id.startswith("."):
            return None
        try:
            return Job(**json.loads((self.folder / f"{job_id}.json").read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None

    def jobs(self) -> list[Job]:
        """Every job, newest first."""
        found = []
        for path in self.folder.glob("*.json"):
            try:
                found.append(Job(**json.loads(path.read_text(encoding="utf-8"))))
            except (FileNotFoundError, ValueError, TypeError):  # pruned meanwhile, or not ours
                continue
        return sorted(found, key=lambda j: (j.submitted, j.id), reverse=True)

    def next_job(self) -> Job | None:
        """For the writer: a job cut short first, then the oldest queued one."""
        waiting = [j for j in reversed(self.jobs()) if not j.is_finished]
        return next((j for j in waiting if j.state == "running"), waiting[0] if waiting else None)

    def prune(self) -> None:
        """Forget the oldest finished jobs past KEEP_FINISHED, and their staged inputs."""
        finished = [j for j in self.jobs() if j.is_finished]
        for job in finished[KEEP_FINISHED:]:
            shutil.rmtree(self.staged(job), ignore_errors=True)
            (self.folder / f"{job.id}.json").unlink(missing_ok=True)


class WriterLock:
    """The right to run jobs, held by one process at a time (non-blocking flock; freed when its holder dies)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file = None
        self.held = False

    def acquire(self) -> bool:
        if not self.held:
            self._file = self._file or self.path.open("a")  # kept open between tries: a try is one system call
            try:
                fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            self._file.truncate(0)
            self._file.write(str(os.getpid()))
            self._file.flush()
            self.held = True
        return True

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the only descriptor drops the flock
            self._file, self.held = None, False


Handler = Callable[[Job, Path], dict | str | None]


class JobRunner:
    """The writer loop each server process runs: it waits for the writer lock, then runs jobs in order.

    `handlers[kind](job, staged_folder)` does a job and returns its result as JSON; an exception fails
    it, with `describe(exc)` as its error. `progress()` records how far the running job is.
    """

    def __init__(self, store: JobStore, handlers: dict[str, Handler], describe: Callable[[Exception], dict],
                 poll_seconds: float = 0.1, lock_retry_seconds: float = 0.5, before: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self.handlers = handlers
        self.describe = describe
        self.lock = WriterLock(store.folder / "writer.lock")
        self._poll, self._retry = poll_seconds, lock_retry_seconds
        self._before = before  # run on the writer thread before its first job (e.g. lower its priority)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._running: Job | None = None
        self._saved_at = 0.0
        self._idle_at: tuple[int, float] | None = None  # (folder mtime, when) of the last scan that found nothing

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="policyqa-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the job under way, and give up the writer lock."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.lock.release()

    def _loop(self) -> None:
        self._before()
        while not self._stop.is_set():
            if not self.lock.acquire():
                self._stop.wait(self._retry)
                continue
            job = self._next_job()
            if job is None:
                self._stop.wait(self._poll)
                continue
            self.run(job)

    def _next_job(self) -> Job | None:
        """The store's next job; while the folder has not changed since a scan found none, None without reading
        every record again (a new or changed record is renamed into the folder, which changes its mtime). The
        folder is read again every RESCAN_SECONDS whatever its mtime says (a change within its timestamp's
        granularity)."""
        stamp = self.store.folder.stat().st_mtime_ns
        if self._idle_at and self._idle_at[0] == stamp and time.monotonic() - self._idle_at[1] < RESCAN_SECONDS:
            return None
        job = self.store.next_job()
        self._idle_at = None if job else (stamp, time.monotonic())
        return job

    def run(self, job: Job) -> None:
        job.attempts += 1
        if job.attempts > MAX_ATTEMPTS:
            job.state, job.error, job.finished = "failed", CUT_SHORT, _now()
            self.store.save(job)
            return
        job.state, job.started, self._running = "running", _now(), job
        self.store.save(job)
        try:
            job.result = self.handlers[job.kind](job, self.store.staged(job))
            job.state = "done"
        except Exception as exc:
            log.warning("write job %s failed: %s", job.id, exc, exc_info=True)
            job.state, job.error = "failed", self.describe(exc)
        job.finished, job.stage, self._running = _now(), None, None
        self.store.save(job)
        shutil.rmtree(self.store.staged(job), ignore_errors=True)
        self.store.prune()

    def progress(self, stage: str, done: int | None = None, total: int | None = None) -> None:
        """Say how far the running job is (called from inside its handler; saved at most 5 times a second)."""
        job = self._running
        if job is None:
            return
        changed = stage != job.stage
        job.stage, job.done, job.total = stage, done, total
        if changed or time.monotonic() - self._saved_at > 0.2:
            self._saved_at = time.monotonic()
            self.store.save(job)
