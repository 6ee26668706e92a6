"""Writes never make searches wait: a long upload and 50 more writes behind it, against a real server.

The upload is held inside its embedding step by a gate (conftest's `gated_server`), so "a long write"
lasts exactly as long as the test needs; searches use the real model throughout.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.conftest import GATED_MAX_QUEUED, LAWS


def _search_p95(client: httpx.Client, rounds: int = 30) -> float:
    took = []
    for i in range(rounds):
        start = time.perf_counter()
        response = client.get("/api/search", params={"q": ["班额标准", "农村寄宿生补助", "教师培训"][i % 3], "k": 5})
        took.append(time.perf_counter() - start)
        assert response.status_code == 200
    return statistics.quantiles(took, n=20)[18]


LAW_FILES = sorted((LAWS / "education").glob("*.txt"))[:3]  # documents the demo index has not embedded


def _upload(client: httpx.Client, name: str, law: int = 0, **params) -> httpx.Response:
    return client.post("/api/documents", params={"wait": "true", **params},
                       files={"files": (name, LAW_FILES[law].read_bytes(), "text/plain")})


def test_searches_keep_their_speed_during_a_long_write_and_fifty_queued_writes(gated_server):
    url, gated = gated_server
    with httpx.Client(base_url=url, timeout=60) as client:
        _search_p95(client, 10)  # warm up
        idle = _search_p95(client)

        first = _upload(client, "第一份通知.txt", wait="false")
        assert first.status_code == 202 and first.json()["state"] in ("queued", "running")
        assert gated.entered.wait(30), "the upload never reached its embedding step"

        def write(i: int) -> httpx.Response:
            if i % 2:
                return client.delete(f"/api/documents/no-such-document-{i}")
            return _upload(client, f"通知{i}.txt", wait="false")

        with ThreadPoolExecutor(50) as pool:
            writes = list(pool.map(write, range(50)))
            during = _search_p95(client)
        statuses = [r.status_code for r in writes]
        # Unknown documents are answered at once; uploads queue up to the limit, the rest are told to come back.
        assert statuses[1::2] == [404] * 25
        assert sorted(statuses[0::2]) == [202] * GATED_MAX_QUEUED + [429] * (25 - GATED_MAX_QUEUED)
        assert all("write" in r.json()["message"] for r in writes if r.status_code == 429)
        assert during < 2 * idle + 0.05, f"search p95 {during * 1000:.0f} ms during writes vs {idle * 1000:.0f} ms idle"

        gated.gate.set()
        job_url = first.json()["status_url"]
        deadline = time.time() + 120
        while (job := client.get(job_url).json())["state"] not in ("done", "failed"):
            assert time.time() < deadline, job
            time.sleep(0.2)
        assert job["state"] == "done", job
        title = job["result"]["documents"][0]["title"]
        top = client.get("/api/search", params={"q": title, "k": 1}).json()["results"][0]
        assert top["document"]["title"] == title  # the committed upload is searchable
        listed = client.get("/api/jobs").json()["jobs"]
        assert {j["job_id"] for j in listed} >= {first.json()["job_id"]}


def test_a_delete_waits_for_its_job_and_says_what_it_removed(gated_server):
    url, gated = gated_server
    gated.gate.set()
    with httpx.Client(base_url=url, timeout=60) as client:
        response = client.delete("/api/documents/004_34cdbe798261bc22")
        assert response.status_code == 200 and response.json()["deleted"] == ["004_34cdbe798261bc22"]
        assert client.delete("/api/documents/004_34cdbe798261bc22").status_code == 404
        ids = {d["doc_id"] for d in client.get("/api/documents").json()["documents"]}
        assert "004_34cdbe798261bc22" not in ids


def test_a_client_that_waits_longer_than_the_write_wait_gets_the_job_to_follow(gated_server):
    url, gated = gated_server
    with httpx.Client(base_url=url, timeout=60) as client:
        start = time.perf_counter()
        waited = _upload(client, "第二份通知.txt", law=1)  # wait=true; the server waits 1 s
        assert waited.status_code == 202 and time.perf_counter() - start < 10
        assert waited.json()["state"] == "running" and waited.json()["result"] is None
        gated.gate.set()
        deadline = time.time() + 120
        while (job := client.get(waited.json()["status_url"]).json())["state"] == "running":
            assert time.time() < deadline
            time.sleep(0.2)
        assert job["state"] == "done" and job["result"]["clauses_added"] > 0


def test_removing_a_document_that_a_running_upload_replaces_is_refused(gated_server):
    url, gated = gated_server
    gated.gate.set()
    with httpx.Client(base_url=url, timeout=60) as client:
        first = _upload(client, "通知.txt", wait="false").json()
        while (job := client.get(first["status_url"]).json())["state"] != "done":
            time.sleep(0.2)
        doc_id = job["result"]["documents"][0]["doc_id"]
        gated.gate.clear()
        gated.entered.clear()
        replacing = _upload(client, "通知.txt", law=1, wait="false").json()  # the same name: replaces it
        assert gated.entered.wait(30)
        refused = client.delete(f"/api/documents/{doc_id}")
        assert refused.status_code == 409 and refused.json()["error"] == "document_busy"
        assert replacing["job_id"] in refused.json()["message"]
        gated.gate.set()
        while client.get(replacing["status_url"]).json()["state"] not in ("done", "failed"):
            time.sleep(0.2)
        assert client.delete(f"/api/documents/{doc_id}").status_code == 200
