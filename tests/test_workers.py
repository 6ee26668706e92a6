"""`policyqa serve --workers 2`: two processes over one index folder, as a user runs it.

Every worker serves what any of them wrote, a job is followed through any worker, a worker killed with
kill -9 is replaced while the other answers, the writer killed in the middle of an upload leaves the
upload to the next writer (finished once), and two servers on one folder never corrupt it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

import httpx
import pytest

from api.workers import KEEPALIVE_SECONDS, PROCESS_HEADER
from tests.conftest import HANG_S, LAWS, REPO, follow_job, free_port, serve_process, wait_until
from tests.test_write_jobs import embedding_under_way, sources, sources_serving, upload

pytestmark = [pytest.mark.server, pytest.mark.model]
WORKERS = 2
LAW_FILES = sorted((LAWS / "education").glob("*.txt"))


def answered_by(response: httpx.Response) -> int:
    return int(response.headers[PROCESS_HEADER.decode()])


def fresh_get(url: str, path: str, **params) -> httpx.Response:
    """A request on a new connection: the kernel hands each new connection to any worker."""
    with httpx.Client(timeout=HANG_S) as client:
        response = client.get(f"{url}{path}", params=params)
    assert response.status_code == 200, response.text
    return response


def versions_by_worker(url: str, want: int) -> dict[int, str]:
    """{process: the index version it serves}, once `want` processes have answered."""
    seen: dict[int, str] = {}

    def all_answered():
        response = fresh_get(url, "/healthz")
        seen[answered_by(response)] = response.json()["version"]
        return len(seen) >= want and seen
    return wait_until(all_answered, f"{want} workers to answer", every=0.02)


@pytest.fixture
def index_copy(demo_index_dir, tmp_path):
    shutil.copytree(demo_index_dir, tmp_path / "index")
    return tmp_path / "index"


def test_every_worker_serves_a_write_and_follows_a_job_submitted_through_another(index_copy, tmp_path):
    with serve_process(index_copy, tmp_path / "up", free_port(), workers=WORKERS) as (url, _):
        before = versions_by_worker(url, WORKERS)
        assert len(set(before.values())) == 1

        job = upload(url, LAW_FILES[:1])
        followers: set[int] = set()

        def done_through_every_worker():
            response = fresh_get(url, job["status_url"])
            if response.json()["state"] == "done":
                followers.add(answered_by(response))
            return len(followers) == WORKERS and response.json()
        finished = wait_until(done_through_every_worker, "every worker to report the job done", every=0.02)
        version = finished["result"]["version"]
        assert version not in before.values()

        def all_serve_it():
            return set(versions_by_worker(url, WORKERS).values()) == {version}
        wait_until(all_serve_it, "every worker to serve the new version", every=0.05)
        title = finished["result"]["documents"][0]["title"]
        for _ in range(2 * WORKERS):  # whichever worker answers, the new document is found
            hits = fresh_get(url, "/api/search", q=title, k=3, rerank="false").json()["results"]
            assert title in [h["document"]["title"] for h in hits]

        # A keep-alive connection is handed back once it is KEEPALIVE_SECONDS old: its client reconnects to
        # whichever worker accepts it, so no worker keeps an unlucky share of the clients.
        with httpx.Client(timeout=HANG_S) as client:
            young = client.get(f"{url}/healthz")
            time.sleep(KEEPALIVE_SECONDS + 0.2)
            old = client.get(f"{url}/healthz")
            again = client.get(f"{url}/healthz")
        assert young.headers.get("connection") != "close" and old.headers.get("connection") == "close"
        assert again.status_code == 200  # the client reconnected by itself


def test_killed_workers_are_replaced_and_an_upload_cut_short_in_the_writer_finishes_once(index_copy, tmp_path):
    with serve_process(index_copy, tmp_path / "up", free_port(), workers=WORKERS) as (url, _):
        workers = set(versions_by_worker(url, WORKERS))
        before = sources(url)

        # A worker that is not the writer dies: the service keeps answering, and a new worker takes its place.
        victim = next(iter(workers))
        os.kill(victim, signal.SIGKILL)
        for _ in range(10):
            assert fresh_get(url, "/api/search", q="班额标准", k=1).json()["results"]
        wait_until(lambda: victim not in versions_by_worker(url, WORKERS), "a new worker to replace the killed one")

        # The writer dies while it embeds an upload: the process that replaces it takes the writer lock and runs
        # the upload again.
        big = upload(url, LAW_FILES[1:30])
        wait_until(lambda: embedding_under_way(url, big), "the upload's embedding to report progress", every=0.1)
        writer = int((tmp_path / "up" / ".jobs" / "writer.lock").read_text())
        assert writer not in workers  # a process of its own, which answers no requests
        os.kill(writer, signal.SIGKILL)
        finished = follow_job(url, big)
        assert finished["state"] == "done" and finished["attempts"] == 2, finished
        added = finished["result"]["documents"]
        assert len(added) + len(finished["result"]["duplicates"]) == 29
        assert sources_serving(url, added) == before + Counter(d["source_path"] for d in added)  # each once


def test_two_servers_on_one_folder_write_in_turn_and_never_corrupt_it(index_copy, tmp_path):
    with serve_process(index_copy, tmp_path / "up", free_port(), workers=1) as (first, _), \
            serve_process(index_copy, tmp_path / "up", free_port(), workers=1) as (second, _):
        before = sources(first)
        jobs = [(first, upload(first, LAW_FILES[30:40])), (second, upload(second, LAW_FILES[40:50]))]
        results = [follow_job(url, job) for url, job in jobs]
        assert [r["state"] for r in results] == ["done", "done"], results
        after = before + Counter(d["source_path"] for r in results for d in r["result"]["documents"])
        for url in (first, second):  # both serve the same, whole index: each upload once
            wait_until(lambda u=url: sources(u) == after, "both servers to serve both uploads")
    check = subprocess.run([sys.executable, "-m", "policyqa", "index", "check", "--index-dir", str(index_copy)],
                           cwd=REPO, capture_output=True, text=True, timeout=HANG_S, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_qdrant_local_mode_refuses_more_than_one_worker(tmp_path):
    env = {**os.environ, "POLICYQA_BACKEND": "qdrant", "POLICYQA_QDRANT_PATH": str(tmp_path / "qdrant")}
    served = subprocess.run([sys.executable, "-m", "policyqa", "serve", "--workers", "2", "--port", str(free_port())],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=HANG_S, check=False)
    assert served.returncode == 2
    assert "Qdrant's local mode" in served.stderr and "--workers 1" in served.stderr
    assert not (tmp_path / "qdrant").exists()  # refused before anything was made
