"""The upload folder holds exactly the files of the uploaded documents, and answers name no server folder."""

from __future__ import annotations

import shutil

from fastapi.testclient import TestClient

from api.app import create_app
from policyqa.settings import Settings
from tests.conftest import LAWS, REPO


def _settings(tmp_path, index_dir) -> Settings:
    return Settings(index_dir=index_dir, upload_dir=tmp_path / "uploads", models_dir=REPO / "data" / "models")


def uploaded_files(folder) -> list[str]:
    """The files kept for documents (not the server's job journal)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def test_a_killed_uploads_staging_folder_goes_and_a_deleted_documents_file_goes_with_it(tmp_path, demo_index_dir,
                                                                                        encoder):
    shutil.copytree(demo_index_dir, tmp_path / "index")
    stale = tmp_path / "uploads" / ".staging-killed"
    stale.mkdir(parents=True)
    (stale / "half.txt").write_text("半个文件")
    law = sorted((LAWS / "education").glob("*.txt"))[0]
    with TestClient(create_app(_settings(tmp_path, tmp_path / "index"), encoder)) as client:
        assert not stale.exists()
        added = client.post("/api/documents?wait=true", files={"files": ("校外实践.txt", law.read_bytes(), "text/plain")}).json()
        doc = added["documents"][0]
        assert not doc["source_path"].startswith("/") and doc["source_path"].endswith(".txt")
        assert uploaded_files(tmp_path / "uploads") == ["校外实践.txt"]
        assert client.delete(f"/api/documents/{doc['doc_id']}").status_code == 200
        assert uploaded_files(tmp_path / "uploads") == []


def test_errors_about_the_index_do_not_name_the_servers_folders(tmp_path, encoder):
    with TestClient(create_app(_settings(tmp_path, tmp_path / "empty-index"), encoder)) as client:
        response = client.get("/api/search", params={"q": "班额标准"})
    assert response.status_code == 503 and response.json()["error"] == "no_index"
    assert str(tmp_path) not in response.text and "policyqa ingest" in response.json()["message"]
