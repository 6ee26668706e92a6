"""Write jobs through a real server: progress while they run, and what a restart in the middle leaves.

An upload answered with 202 reports its stage (parsing, embedding n/m characters, committing) until it
is done; a server killed (every process of it, kill -9) while it embeds runs that upload again when it
is started again, from the files staged with the job, and adds its documents once.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections import Counter

import httpx
import pytest

from tests.conftest import HANG_S, LAWS, follow_job, free_port, serve_process, wait_until

pytestmark = [pytest.mark.server, pytest.mark.model]


def upload(url: str, paths) -> dict:
    files = [("files", (p.name, p.read_bytes(), "text/plain")) for p in paths]
    response = httpx.post(f"{url}/api/documents", params={"wait": "false"}, files=files, timeout=HANG_S)
    assert response.status_code == 202, response.text
    return response.json()


def embedding_under_way(url: str, job: dict) -> dict | None:
    status = httpx.get(f"{url}{job['status_url']}", timeout=HANG_S).json()
    assert status["state"] in ("queued", "running"), status
    return status if status["stage"] == "embedding" and status["done"] else None


def sources(url: str) -> Counter:
    return Counter(d["source_path"] for d in httpx.get(f"{url}/api/documents", timeout=HANG_S).json()["documents"])


def sources_serving(url: str, documents: list[dict]) -> Counter:
    """The documents' sources as answered by a server process that serves `documents` (a job is done when its
    writer committed; the other workers open that version within a second)."""
    wanted = {d["source_path"] for d in documents}
    return wait_until(lambda: (found := sources(url)).keys() >= wanted and found, "a worker serving the write")


def test_a_server_killed_in_the_middle_of_an_upload_finishes_it_once_after_a_restart(demo_index_dir, tmp_path):
    shutil.copytree(demo_index_dir, tmp_path / "index")
    port = free_port()
    laws = sorted((LAWS / "education").glob("*.txt"))
    with serve_process(tmp_path / "index", tmp_path / "up", port) as (url, proc):
        job = follow_job(url, upload(url, laws[:2]))
        assert job["state"] == "done" and len(job["result"]["documents"]) == 2, job
        before = sources_serving(url, job["result"]["documents"])

        # 38 laws (about 1,300 clauses): its embedding reports how far it has come, whatever the machine's speed.
        big = upload(url, laws[2:40])
        status = wait_until(lambda: embedding_under_way(url, big), "the upload's embedding to report progress",
                            every=0.2)
        assert 0 < status["done"] < status["total"]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    with serve_process(tmp_path / "index", tmp_path / "up", port) as (url, _):
        finished = follow_job(url, big)
        assert finished["state"] == "done" and finished["attempts"] == 2, finished
        added = finished["result"]["documents"]
        assert len(added) + len(finished["result"]["duplicates"]) == 38
        assert sources_serving(url, added) == before + Counter(d["source_path"] for d in added)  # each once
        assert {p.name for p in (tmp_path / "up").glob("*.txt")} >= {d["source_path"].split("/")[-1] for d in added}
        first = httpx.get(f"{url}{job['status_url']}").json()
        assert first["state"] == "done" and first["attempts"] == 1 and len(first["result"]["documents"]) == 2
        listed = [j["job_id"] for j in httpx.get(f"{url}/api/jobs").json()["jobs"]]
        assert listed.index(big["job_id"]) < listed.index(job["job_id"])  # newest first, both still listed
