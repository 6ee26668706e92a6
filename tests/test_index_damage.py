"""A damaged index folder is never mistaken for "no index": nothing in it is overwritten or deleted,
every command says in one line what is wrong, and `policyqa index repair` brings it back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.pipeline import ingest_files
from storage.store import IndexDamagedError, IndexStore
from tests.conftest import HANG_S, REPO, SEEDS
from writes.commit import update_index

ENV = {**os.environ, "POLICYQA_MODELS_DIR": str(REPO / "data" / "models")}


def _policyqa(*args: str, cwd: Path, timeout: float = HANG_S) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "policyqa", *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file of the folder with its bytes (what "nothing was changed" compares)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def two_versions(tmp_path, demo_index_dir, encoder) -> Path:
    """The demo index plus one more committed version (seed 002 removed), as a server leaves it."""
    index_dir = tmp_path / "index"
    shutil.copytree(demo_index_dir, index_dir)
    update_index(index_dir, encoder, [], [], remove_doc_ids={"002_d6057a83cdbdb456"})
    return index_dir


def _assert_one_line_error(result: subprocess.CompletedProcess, *phrases: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    message = " ".join(result.stderr.split())
    for phrase in phrases:
        assert phrase in message, message


def test_an_empty_current_file_stops_serve_and_search_and_nothing_is_overwritten(two_versions, tmp_path):
    (two_versions / "CURRENT").write_text("")
    before = _snapshot(two_versions)

    serve = _policyqa("serve", "--index-dir", str(two_versions), "--port", "1", cwd=tmp_path)
    _assert_one_line_error(serve, "damaged", "CURRENT is empty", "policyqa index repair", "nothing was changed")
    assert "demo corpus" not in serve.stderr and "serving on" not in serve.stderr
    search = _policyqa("search", "班额标准", "--index-dir", str(two_versions), cwd=tmp_path)
    _assert_one_line_error(search, "damaged", "CURRENT is empty")
    assert _snapshot(two_versions) == before


def test_a_write_into_a_damaged_folder_is_refused_and_changes_nothing(two_versions, encoder):
    (two_versions / "CURRENT").unlink()
    before = _snapshot(two_versions)
    parsed = ingest_files([SEEDS["002"]])
    with pytest.raises(IndexDamagedError, match="CURRENT is missing"):
        update_index(two_versions, encoder, parsed.documents, parsed.clauses)
    assert _snapshot(two_versions) == before


def test_repair_points_current_at_the_newest_complete_version(two_versions, tmp_path):
    store = IndexStore(two_versions)
    newest = store.current_version()
    (two_versions / "CURRENT").write_text("")
    repair = _policyqa("index", "repair", "--index-dir", str(two_versions), cwd=tmp_path)
    assert repair.returncode == 0, repair.stderr
    assert f"version {newest}" in repair.stderr
    assert store.current_version() == newest and len(store.version_names()) == 2  # nothing deleted

    # The newest version's manifest is cut short: repair falls back to the one before, which has seed 002 again.
    (two_versions / "versions" / newest / "manifest.json").write_text('{"format_version": 2, "segm')
    check = _policyqa("index", "check", "--index-dir", str(two_versions), cwd=tmp_path)
    _assert_one_line_error(check, f"versions/{newest}/manifest.json cannot be read")
    assert _policyqa("index", "repair", "--index-dir", str(two_versions), cwd=tmp_path).returncode == 0
    search = _policyqa("search", "班额标准", "-k", "1", "--json", "--index-dir", str(two_versions), cwd=tmp_path)
    assert search.returncode == 0, search.stderr
    assert "小学班额不超过45人" in json.loads(search.stdout)[0]["clause"]["text"]


# A version's own manifest can be repaired to the version before; a segment both versions share cannot.
REPAIR, RESTORE = "policyqa index repair", "restore the folder from a backup"


@pytest.mark.parametrize("damage, named, advice", [
    (lambda version, segment: (segment / "dense.faiss").unlink(), "dense.faiss is missing", RESTORE),
    (lambda version, segment: (version / "manifest.json").write_text("{not json"), "manifest.json cannot be read", REPAIR),
    (lambda version, segment: (segment / "lexical").rename(segment / "lexical.gone"), "is missing", RESTORE),
    (lambda version, segment: (segment / "clauses.jsonl").write_bytes(b"{}"), "clauses.jsonl has 2 bytes", RESTORE),
])
def test_a_damaged_version_gives_one_line_naming_the_file_and_serve_never_claims_to_serve(
        two_versions, tmp_path, damage, named, advice):
    store = IndexStore(two_versions)
    segment = store.live().segments[0][0]
    damage(two_versions / "versions" / store.current_version(), store.segment_folder(segment))
    serve = _policyqa("serve", "--index-dir", str(two_versions), "--port", "1", cwd=tmp_path)
    _assert_one_line_error(serve, named, advice)
    assert len(serve.stderr.strip().splitlines()) <= 3 and "serving on" not in serve.stderr


def test_the_demo_corpus_goes_only_into_an_empty_folder(tmp_path):
    folder = tmp_path / "my-notes"
    folder.mkdir()
    (folder / "notes.txt").write_text("关于班额的备忘", encoding="utf-8")
    serve = _policyqa("serve", "--index-dir", str(folder), "--port", "1", cwd=tmp_path)
    _assert_one_line_error(serve, "not empty", "--index-dir")
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_a_killed_commit_leaves_the_last_version_live_and_its_staging_folder_is_cleaned(two_versions, encoder):
    store = IndexStore(two_versions)
    live = store.current_version()
    stale = two_versions / "versions" / f".{int(live) + 1:06d}-killed"
    stale.mkdir()
    (stale / "documents.jsonl").write_text("half a wri")
    assert store.current_version() == live  # a staging folder is no version
    update_index(two_versions, encoder, [], [], remove_doc_ids={"000_9ad08608ccc3cd51"})
    assert not stale.exists()


def test_an_index_of_the_format_before_segments_is_refused_with_what_to_do(tmp_path):
    old = tmp_path / "old-index"
    (old / "versions" / "000003").mkdir(parents=True)
    (old / "versions" / "000003" / "manifest.json").write_text(json.dumps({"format_version": 1, "documents": 12}))
    (old / "versions" / "000003" / "documents.jsonl").write_text("")
    (old / "versions" / "000003" / "clauses.jsonl").write_text("")
    (old / "CURRENT").write_text("000003")
    before = _snapshot(old)
    search = _policyqa("search", "班额标准", "--index-dir", str(old), cwd=tmp_path)
    _assert_one_line_error(search, "older policyqa", "index format 1", "policyqa ingest PATH --index-dir NEW")
    assert _snapshot(old) == before
