"""Staff correct a document's metadata, re-parse it, and manage documents from the CLI (issue #15, in part).

A correction is used at once by citations and filters, survives a re-ingest of the same file, and a
bad one changes nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from policyqa.settings import Settings
from tests.conftest import DEMO, HANG_S, LAWS, REPO, wait_until

DOC = "002_d6057a83cdbdb456"
NEW_TITLE = "鞍山市大力提升义务教育工作质量实施意见"


@pytest.fixture
def library(tmp_path, demo_index_dir, encoder):
    """A server over a private copy of the demo index, its documents' files copied where it can re-read them."""
    shutil.copytree(demo_index_dir, tmp_path / "index")
    settings = Settings(index_dir=tmp_path / "index", upload_dir=tmp_path / "uploads", api_key="secret",
                        models_dir=REPO / "data" / "models")
    with TestClient(create_app(settings, encoder), headers={"X-API-Key": "secret"}) as client:
        yield client


def test_a_corrected_title_and_issuer_show_in_citations_and_filters(library):
    response = library.patch(f"/api/documents/{DOC}", json={"title": NEW_TITLE, "issuer": "鞍山市教育局基础教育处"})
    assert response.status_code == 200, response.text
    assert response.json()["document"]["title"] == NEW_TITLE
    top = library.get("/api/search", params={"q": "班额标准", "k": 1}).json()["results"][0]
    assert top["document"]["title"] == NEW_TITLE and top["document"]["issuer"] == "鞍山市教育局基础教育处"
    assert top["document"]["doc_number"] == "鞍教发〔2017〕66号"  # a field left out keeps its value
    filtered = library.get("/api/search", params={"q": "教师培训", "issuer": "基础教育处"}).json()["results"]
    assert filtered and {r["document"]["doc_id"] for r in filtered} == {DOC}
    answer = library.post("/v1/chat/completions", json={"model": "policyqa", "messages": [
        {"role": "user", "content": "小学班额不超过多少人"}]}).json()["choices"][0]["message"]["content"]
    assert NEW_TITLE in answer


def test_a_correction_survives_reparsing_the_same_file(library):
    library.patch(f"/api/documents/{DOC}", json={"region": "辽宁省鞍山市", "date": "2017-04-18"})
    response = library.post(f"/api/documents/{DOC}/reparse")
    assert response.status_code == 200, response.text
    document = library.get(f"/api/documents/{DOC}").json()
    assert (document["region"], document["date"]) == ("辽宁省鞍山市", "2017-04-18")
    assert document["clauses"] == len(document["clause_spans"]) > 10


@pytest.mark.parametrize(("body", "message"), [
    ({"title": "   "}, "title: String should have at least 1 character"),
    ({"issuer": "局" * 10_000}, "issuer: String should have at most 100 characters"),
    ({"date": "去年"}, "date: String should match pattern"),
    ({"author": "x"}, "author: Extra inputs are not permitted"),
])
def test_a_bad_correction_is_refused_and_changes_nothing(library, body, message):
    before = library.get(f"/api/documents/{DOC}").json()
    response = library.patch(f"/api/documents/{DOC}", json=body)
    assert response.status_code == 422 and message in response.json()["message"]
    assert library.get(f"/api/documents/{DOC}").json() == before


def test_corrections_need_the_key_and_a_known_document(library):
    response = library.patch(f"/api/documents/{DOC}", json={"title": "x"}, headers={"X-API-Key": "wrong"})
    assert response.status_code == 401
    response = library.patch("/api/documents/no-such-doc", json={"title": "x"})
    assert response.status_code == 404 and "no such document" in response.json()["message"]


def test_reparsing_a_document_whose_file_is_gone_says_so(library, tmp_path):
    source = tmp_path / "notice.txt"
    shutil.copyfile(LAWS / "education" / "080_教师法.txt", source)
    uploaded = library.post("/api/documents?wait=true", files=[("files", (source.name, source.read_bytes(), "text/plain"))])
    doc_id = uploaded.json()["documents"][0]["doc_id"]
    for stored in (tmp_path / "uploads").glob("*.txt"):
        stored.unlink()
    response = library.post(f"/api/documents/{doc_id}/reparse")
    assert response.status_code == 409 and "no longer there" in response.json()["message"]
    assert str(tmp_path) not in response.text  # the server's folders are not shown


def test_the_added_date_is_when_the_text_came_in_and_a_correction_or_reparse_keeps_it(library):
    law = (LAWS / "education" / "080_教师法.txt").read_bytes()
    before = datetime.now(UTC).replace(microsecond=0)
    uploaded = library.post("/api/documents?wait=true", files=[("files", ("教师法.txt", law, "text/plain"))]).json()
    doc_id, added = uploaded["documents"][0]["doc_id"], uploaded["documents"][0]["added"]
    assert before <= datetime.fromisoformat(added) <= datetime.now(UTC)
    listed = {d["doc_id"]: d for d in library.get("/api/documents").json()["documents"]}
    assert listed[doc_id]["added"] == added
    assert library.patch(f"/api/documents/{doc_id}", json={"region": "全国"}).json()["document"]["added"] == added
    assert library.post(f"/api/documents/{doc_id}/reparse").json()["documents"][0]["added"] == added
    # The stamp has whole seconds: a text that changes within the same second could not be told apart.
    wait_until(lambda: datetime.now(UTC).replace(microsecond=0) > datetime.fromisoformat(added), "the next second")
    revised = law.replace("外籍教师的聘任办法".encode(), "外籍教师的聘任和管理办法".encode())
    again = library.post("/api/documents?wait=true", files=[("files", ("教师法.txt", revised, "text/plain"))]).json()
    assert again["documents"][0]["doc_id"] == doc_id and again["documents"][0]["added"] > added


def run_cli(*args, index_dir) -> subprocess.CompletedProcess:
    env = {**os.environ, "POLICYQA_MODELS_DIR": str(REPO / "data" / "models"), "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "policyqa", *args, "--index-dir", str(index_dir)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=HANG_S)


def test_the_cli_lists_shows_corrects_and_removes_documents(demo_index_dir, tmp_path):
    index_dir = tmp_path / "index"
    shutil.copytree(demo_index_dir, index_dir)
    listed = run_cli("documents", "list", "--json", index_dir=index_dir)
    assert listed.returncode == 0 and f'"doc_id": "{DOC}"' in listed.stdout
    bad = run_cli("documents", "set", DOC, "--title", "", index_dir=index_dir)
    assert bad.returncode == 2 and "title: String should have at least 1 character" in bad.stderr
    corrected = run_cli("documents", "set", DOC, "--title", NEW_TITLE, index_dir=index_dir)
    assert corrected.returncode == 0, corrected.stderr
    shown = run_cli("documents", "show", DOC, index_dir=index_dir)
    assert f"《{NEW_TITLE}》" in shown.stdout and "二(三)2" in shown.stdout and "小学班额不超过45人" in shown.stdout
    # The correction is kept for the next ingest of the same file.
    reingested = run_cli("ingest", str(DEMO / f"{DOC}.txt"), index_dir=index_dir)
    assert reingested.returncode == 0, reingested.stderr
    assert NEW_TITLE in run_cli("search", "班额标准", "-k", "1", index_dir=index_dir).stdout
    removed = run_cli("documents", "remove", DOC, index_dir=index_dir)
    assert removed.returncode == 0 and DOC not in run_cli("documents", "list", "--json", index_dir=index_dir).stdout
