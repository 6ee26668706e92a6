"""Writes never make searches wait: a long upload and 50 more writes behind it, against a real server.

The upload is held inside its embedding step by a gate (conftest's `gated_server`), so "a long write"
lasts exactly as long as the test needs; searches use the real model throughout. How fast searches stay
during writes is measured by bench/load.py, not here.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import GATED_MAX_QUEUED, HANG_S, LAWS, follow_job

pytestmark = pytest.mark.server



def _top_clauses(client: httpx.Client) -> list[list[str]]:
    """The top five clause ids of three searches, each answered."""
    tops = []
    for query in ("班额标准", "农村寄宿生补助", "教师培训"):
        response = client.get("/api/search", params={"q": query, "k": 5})
        assert response.status_code == 200
        tops.append([r["clause_id"] for r in response.json()["results"]])
    return tops


LAW_FILES = sorted((LAWS / "education").glob("*.txt"))[:3]  # documents the demo index has not embedded


def _upload(client: httpx.Client, name: str, law: int = 0, **params) -> httpx.Response:
    return client.post("/api/documents", params={"wait": "true", **params},
                       files={"files": (name, LAW_FILES[law].read_bytes(), "text/plain")})


def test_searches_are_answered_alike_during_a_long_write_and_fifty_queued_writes(gated_server):
    url, gated = gated_server
    with httpx.Client(base_url=url, timeout=HANG_S) as client:
        idle = _top_clauses(client)
        first = _upload(client, "第一份通知.txt", wait="false")
        assert first.status_code == 202 and first.json()["state"] in ("queued", "running")
        assert gated.entered.wait(HANG_S), "the upload never reached its embedding step"

        def write(i: int) -> httpx.Response:
            if i % 2:
                return client.delete(f"/api/documents/no-such-document-{i}")
            return _upload(client, f"通知{i}.txt", wait="false")

        with ThreadPoolExecutor(50) as pool:
            writes = list(pool.map(write, range(50)))
            during = _top_clauses(client)  # the upload is still held in its embedding, the queue full behind it
        assert not gated.gate.is_set() and during == idle
        statuses = [r.status_code for r in writes]
        # Unknown documents are answered at once; uploads queue up to the limit, the rest are told to come back.
        assert statuses[1::2] == [404] * 25
        assert sorted(statuses[0::2]) == [202] * GATED_MAX_QUEUED + [429] * (25 - GATED_MAX_QUEUED)
        assert all("write" in r.json()["message"] for r in writes if r.status_code == 429)

        gated.gate.set()
        job = follow_job(url, first.json())
        assert job["state"] == "done", job
        title = job["result"]["documents"][0]["title"]
        top = client.get("/api/search", params={"q": title, "k": 1}).json()["results"][0]
        assert top["document"]["title"] == title  # the committed upload is searchable
        listed = client.get("/api/jobs").json()["jobs"]
        assert {j["job_id"] for j in listed} >= {first.json()["job_id"]}


def test_a_delete_waits_for_its_job_and_says_what_it_removed(gated_server):
    url, gated = gated_server
    gated.gate.set()
    with httpx.Client(base_url=url, timeout=HANG_S) as client:
        response = client.delete("/api/documents/004_34cdbe798261bc22")
        assert response.status_code == 200 and response.json()["deleted"] == ["004_34cdbe798261bc22"]
        assert client.delete("/api/documents/004_34cdbe798261bc22").status_code == 404
        ids = {d["doc_id"] for d in client.get("/api/documents").json()["documents"]}
        assert "004_34cdbe798261bc22" not in ids


@pytest.mark.parametrize("gated_server", [{"write_wait_seconds": 1}], indirect=True)
def test_a_client_that_waits_longer_than_the_write_wait_gets_the_job_to_follow(gated_server):
    url, gated = gated_server
    with httpx.Client(base_url=url, timeout=HANG_S) as client:
        waited = _upload(client, "第二份通知.txt", law=1)  # wait=true; the server waits 1 s, the gate stays shut
        assert waited.status_code == 202 and not gated.gate.is_set()
        assert waited.json()["state"] == "running" and waited.json()["result"] is None
        gated.gate.set()
        job = follow_job(url, waited.json())
        assert job["state"] == "done" and job["result"]["clauses_added"] > 0


def test_removing_a_document_that_a_running_upload_replaces_is_refused(gated_server):
    url, gated = gated_server
    gated.gate.set()
    with httpx.Client(base_url=url, timeout=HANG_S) as client:
        job = follow_job(url, _upload(client, "通知.txt", wait="false").json())
        assert job["state"] == "done", job
        doc_id = job["result"]["documents"][0]["doc_id"]
        gated.gate.clear()
        gated.entered.clear()
        replacing = _upload(client, "通知.txt", law=1, wait="false").json()  # the same name: replaces it
        assert gated.entered.wait(HANG_S)
        refused = client.delete(f"/api/documents/{doc_id}")
        assert refused.status_code == 409 and refused.json()["error"] == "document_busy"
        assert replacing["job_id"] in refused.json()["message"]
        gated.gate.set()
        assert follow_job(url, replacing)["state"] == "done"
        assert client.delete(f"/api/documents/{doc_id}").status_code == 200
