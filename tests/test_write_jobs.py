"""Write jobs through a real server: progress while they run, and what a restart in the middle leaves.

An upload answered with 202 reports its stage (parsing, embedding n/m characters, committing) until it
is done; a server killed while it embeds comes back with that job reported `interrupted` and the index
as the last finished write left it.
"""

from __future__ import annotations

import shutil
import signal

import httpx
import pytest

from tests.conftest import HANG_S, LAWS, follow_job, free_port, serve_process, wait_until

pytestmark = [pytest.mark.server, pytest.mark.model]


def upload(url: str, paths) -> dict:
    files = [("files", (p.name, p.read_bytes(), "text/plain")) for p in paths]
    response = httpx.post(f"{url}/api/documents", params={"wait": "false"}, files=files, timeout=HANG_S)
    assert response.status_code == 202, response.text
    return response.json()


def test_a_job_reports_its_progress_and_a_restart_reports_it_interrupted(demo_index_dir, tmp_path):
    shutil.copytree(demo_index_dir, tmp_path / "index")
    port = free_port()
    laws = sorted((LAWS / "education").glob("*.txt"))
    with serve_process(tmp_path / "index", tmp_path / "up", port) as (url, proc):
        job = follow_job(url, upload(url, laws[:2]))
        assert job["state"] == "done" and len(job["result"]["documents"]) == 2, job
        documents = httpx.get(f"{url}/api/stats").json()["documents"]

        # 38 laws (about 1,300 clauses): its embedding reports how far it has come, whatever the machine's speed.
        big = upload(url, laws[2:40])

        def embedding_under_way() -> dict | None:
            status = httpx.get(f"{url}{big['status_url']}", timeout=HANG_S).json()
            assert status["state"] in ("queued", "running"), status
            return status if status["stage"] == "embedding" and status["done"] else None

        status = wait_until(embedding_under_way, "the upload's embedding to report progress", every=0.2)
        assert 0 < status["done"] < status["total"]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with serve_process(tmp_path / "index", tmp_path / "up", port) as (url, _):
        status = httpx.get(f"{url}{big['status_url']}").json()
        assert status["state"] == "interrupted" and status["error"]["error"] == "interrupted"
        assert "Submit it again" in status["error"]["message"] and str(tmp_path) not in str(status)
        finished = httpx.get(f"{url}{job['status_url']}").json()
        assert finished["state"] == "done" and len(finished["result"]["documents"]) == 2
        assert httpx.get(f"{url}/api/stats").json()["documents"] == documents  # nothing of the killed upload
        listed = [j["job_id"] for j in httpx.get(f"{url}/api/jobs").json()["jobs"]]
        assert listed.index(big["job_id"]) < listed.index(job["job_id"])  # newest first, both still listed
