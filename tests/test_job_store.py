"""The job store on disk: order, staged inputs, the queue limit, the writer lock across processes, and
jobs cut short (run again first, and not for ever)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from tests.conftest import HANG_S, REPO, wait_until
from writes.job_store import MAX_ATTEMPTS, Job, JobRunner, JobStore, QueueFullError, WriterLock


def describe(exc: Exception) -> dict:
    return {"status": 500, "error": type(exc).__name__, "message": str(exc), "detail": None}


def finished(store: JobStore, job: Job) -> Job:
    return wait_until(lambda: (j := store.get(job.id)).is_finished and j, f"job {job.id} to finish", every=0.01)


def test_jobs_run_in_the_order_they_came_with_their_staged_files_and_results(tmp_path):
    store = JobStore(tmp_path / "jobs", max_queued=8)
    seen = []

    def upload(job, staged):
        seen.append((job.subject, sorted(p.read_text() for p in staged.iterdir())))
        return {"files": len(job.subject)}

    first = store.submit("upload", ["a.txt", "b.txt"], files=[("a.txt", b"A"), ("b.txt", b"B")])
    second = store.submit("upload", ["c.txt"], files=[("c.txt", b"C")])
    runner = JobRunner(store, {"upload": upload}, describe)
    runner.start()
    try:
        assert finished(store, second).result == {"files": 1}
    finally:
        runner.stop()
    assert seen == [(["a.txt", "b.txt"], ["A", "B"]), (["c.txt"], ["C"])]
    assert store.get(first.id).state == "done" and store.get(first.id).attempts == 1
    assert not store.staged(first).exists()  # inputs go once the job is done
    assert [j.id for j in store.jobs()] == [second.id, first.id]  # newest first


def test_a_record_is_listed_once_while_it_is_being_rewritten(tmp_path, monkeypatch):
    store = JobStore(tmp_path / "jobs", max_queued=8)
    job = store.submit("remove", ["a"])
    listed_during_save = []
    replace = os.replace

    def listing_before_the_rename(source, target):
        listed_during_save.append([j.id for j in store.jobs()])
        replace(source, target)

    monkeypatch.setattr(os, "replace", listing_before_the_rename)
    job.state = "running"
    store.save(job)
    assert listed_during_save == [[job.id]]
    assert store.get(job.id).state == "running"


def test_a_failing_job_keeps_its_error_and_the_next_one_runs(tmp_path):
    store = JobStore(tmp_path / "jobs", max_queued=8)

    def remove(job, _):
        if job.subject == ["missing"]:
            raise KeyError("no such document: missing")
        return {"deleted": job.subject}

    bad, good = store.submit("remove", ["missing"]), store.submit("remove", ["doc"])
    runner = JobRunner(store, {"remove": remove}, describe)
    runner.start()
    try:
        assert finished(store, good).result == {"deleted": ["doc"]}
    finally:
        runner.stop()
    failed = store.get(bad.id)
    assert failed.state == "failed" and failed.error["error"] == "KeyError" and "missing" in failed.error["message"]


def test_clients_are_refused_past_the_queue_limit_but_the_servers_own_jobs_are_not(tmp_path):
    store = JobStore(tmp_path / "jobs", max_queued=2)
    store.submit("remove", ["a"])
    store.submit("remove", ["b"])
    with pytest.raises(QueueFullError, match="2 writes are already waiting"):
        store.submit("remove", ["c"])
    assert store.submit("merge", [], limited=False).state == "queued"
    assert len(store.jobs()) == 3


def test_a_job_cut_short_runs_again_before_queued_ones_and_is_failed_after_max_attempts(tmp_path):
    store = JobStore(tmp_path / "jobs", max_queued=8)
    queued = store.submit("remove", ["queued"])
    cut = store.submit("upload", ["cut.txt"], files=[("cut.txt", b"X")])
    cut.state, cut.attempts = "running", 1  # what a writer killed in the middle of it leaves
    store.save(cut)
    assert store.next_job().id == cut.id

    hopeless = store.submit("upload", ["kills.txt"], files=[("kills.txt", b"Y")])
    hopeless.state, hopeless.attempts = "running", MAX_ATTEMPTS
    store.save(hopeless)
    ran = []
    runner = JobRunner(store, {"upload": lambda job, staged: ran.append(job.id) or {"rerun": job.attempts},
                               "remove": lambda job, _: ran.append(job.id) or {}}, describe)
    runner.start()
    try:
        finished(store, queued)
    finally:
        runner.stop()
    assert ran[0] in (cut.id, hopeless.id) and ran[-1] == queued.id and hopeless.id not in ran
    assert store.get(cut.id).result == {"rerun": 2}
    given_up = store.get(hopeless.id)
    assert given_up.state == "failed" and given_up.error["error"] == "interrupted"


HOLD_LOCK = """
import sys, time
from writes.job_store import WriterLock
lock = WriterLock(sys.argv[1])
assert lock.acquire()
print("held", flush=True)
time.sleep(600)
"""


def test_one_writer_at_a_time_across_processes_and_a_killed_writer_frees_the_lock(tmp_path):
    path = tmp_path / "writer.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        ours = WriterLock(path)
        assert not ours.acquire()
        assert int(path.read_text()) == holder.pid  # the file says who writes
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(HANG_S)
        assert ours.acquire() and int(path.read_text()) == os.getpid()
        ours.release()
    finally:
        holder.kill()


def test_a_runner_without_the_lock_runs_nothing_until_the_holder_lets_go(tmp_path):
    store = JobStore(tmp_path / "jobs", max_queued=8)
    other = WriterLock(store.folder / "writer.lock")
    assert other.acquire()  # another process's writer, as far as flock can tell (a second open file)
    ran = threading.Event()
    runner = JobRunner(store, {"remove": lambda job, _: ran.set() or {}}, describe, lock_retry_seconds=0.01)
    runner.start()
    try:
        job = store.submit("remove", ["a"])
        assert not ran.wait(0.3) and store.get(job.id).state == "queued"
        other.release()
        assert finished(store, job).state == "done"
    finally:
        runner.stop()
