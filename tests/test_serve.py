"""`policyqa serve` on an empty index directory: ingests the demo corpus, then answers over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx

from tests.conftest import REPO


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_ingests_the_demo_corpus_when_there_is_no_index(tmp_path):
    port = _free_port()
    env = {**os.environ, "POLICYQA_MODELS_DIR": str(REPO / "data" / "models"), "POLICYQA_UPLOAD_DIR": str(tmp_path / "up")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "policyqa", "serve", "--port", str(port), "--index-dir", str(tmp_path / "index")],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.time() + 600
        while True:
            assert proc.poll() is None, f"policyqa serve exited early:\n{proc.stdout.read()}"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()["index"] == "ready":
                    break
            except httpx.TransportError:
                pass
            assert time.time() < deadline, "the server was not ready within 10 minutes"
            time.sleep(1)
        body = httpx.get(f"http://127.0.0.1:{port}/api/search", params={"q": "班额标准", "k": 3}, timeout=30).json()
        assert "小学班额不超过45人" in body["results"][0]["text"]
        assert httpx.get(f"http://127.0.0.1:{port}/api/stats").json()["documents"] == 12
        page = httpx.get(f"http://127.0.0.1:{port}/")
        assert page.status_code == 200 and "<html" in page.text.lower()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert (tmp_path / "index" / "CURRENT").is_file()
