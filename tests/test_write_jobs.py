"""Write jobs through a real server: progress while they run, and what a restart in the middle leaves.

An upload answered with 202 reports its stage (parsing, embedding n/m characters, committing) until it
is done; a server killed while it embeds comes back with that job reported `interrupted` and the index
as the last finished write left it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager

import httpx

from tests.conftest import LAWS, REPO
from tests.test_serve import _free_port


@contextmanager
def server(root, port):
    env = {**os.environ, "POLICYQA_MODELS_DIR": str(REPO / "data" / "models"), "POLICYQA_UPLOAD_DIR": str(root / "up")}
    proc = subprocess.Popen([sys.executable, "-m", "policyqa", "serve", "--port", str(port), "--index-dir",
                             str(root / "index")], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while True:
        assert proc.poll() is None, "policyqa serve exited early"
        try:
            if httpx.get(f"{url}/healthz", timeout=2).json()["index"] == "ready":
                break
        except httpx.TransportError:
            pass
        assert time.time() < deadline
        time.sleep(0.5)
    try:
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)


def upload(url: str, paths) -> dict:
    files = [("files", (p.name, p.read_bytes(), "text/plain")) for p in paths]
    response = httpx.post(f"{url}/api/documents", params={"wait": "false"}, files=files, timeout=60)
    assert response.status_code == 202, response.text
    return response.json()


def test_a_job_reports_its_progress_and_a_restart_reports_it_interrupted(demo_index_dir, tmp_path):
    shutil.copytree(demo_index_dir, tmp_path / "index")
    port = _free_port()
    laws = sorted((LAWS / "education").glob("*.txt"))
    with server(tmp_path, port) as (url, proc):
        job = upload(url, laws[:2])
        seen = set()
        while job["state"] not in ("done", "failed"):
            time.sleep(0.1)
            job = httpx.get(f"{url}{job['status_url']}").json()
            seen.add((job["state"], job["stage"]))
        assert job["state"] == "done" and len(job["result"]["documents"]) == 2, job
        assert ("running", "parsing") in seen or ("running", "embedding") in seen, seen
        documents = httpx.get(f"{url}/api/stats").json()["documents"]

        big = upload(url, laws[2:40])
        while True:
            status = httpx.get(f"{url}{big['status_url']}").json()
            if status["stage"] == "embedding" and status["done"]:
                break
            assert status["state"] in ("queued", "running"), status
            time.sleep(0.2)
        assert 0 < status["done"] < status["total"]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with server(tmp_path, port) as (url, _):
        status = httpx.get(f"{url}{big['status_url']}").json()
        assert status["state"] == "interrupted" and status["error"]["error"] == "interrupted"
        assert "Submit it again" in status["error"]["message"] and str(tmp_path) not in str(status)
        finished = httpx.get(f"{url}{job['status_url']}").json()
        assert finished["state"] == "done" and len(finished["result"]["documents"]) == 2
        assert httpx.get(f"{url}/api/stats").json()["documents"] == documents  # nothing of the killed upload
        listed = [j["job_id"] for j in httpx.get(f"{url}/api/jobs").json()["jobs"]]
        assert listed.index(big["job_id"]) < listed.index(job["job_id"])  # newest first, both still listed
