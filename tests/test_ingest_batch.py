"""Batch ingest: bad files are reported and lose nothing, duplicates ingest once, the index survives crashes."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from typer.testing import CliRunner

from index.clause_index import ClauseIndex
from ingest.errors import EmptyDocumentError
from ingest.pipeline import find_files, ingest_files, parse_file
from policyqa.cli import app
from storage import segment as segment_module
from storage.store import IndexMissingError, IndexStore
from tests.conftest import DEMO, SEEDS
from writes.commit import update_index


@pytest.fixture
def messy_folder(tmp_path):
    folder = tmp_path / "inbox"
    (folder / "sub").mkdir(parents=True)
    for path in SEEDS.values():
        shutil.copy(path, folder / path.name)
    text = SEEDS["002"].read_text(encoding="utf-8")
    (folder / "sub" / "copy_of_002_gbk.txt").write_bytes(text.encode("gb18030"))  # same text, other file
    (folder / "broken.txt").write_bytes(os.urandom(4096))
    (folder / "empty.txt").write_text("\n  \n", encoding="utf-8")
    (folder / "only_chrome.txt").write_text("您现在的位置:首页>>正文\n浏览数量: 收藏文章 打印文章\n", encoding="utf-8")
    (folder / "notes.xls").write_bytes(b"not a document")
    return folder


def test_folder_ingest_reports_bad_files_and_keeps_the_rest(messy_folder):
    files = list(find_files([messy_folder]))
    assert messy_folder / "notes.xls" not in files  # unsupported types are not picked up from folders
    result = ingest_files(files)
    skipped = {os.path.basename(s.path): s.reason for s in result.skipped}
    assert set(skipped) == {"broken.txt", "empty.txt", "only_chrome.txt"}
    assert "decode" in skipped["broken.txt"].lower() or "encoding" in skipped["broken.txt"].lower()
    assert "no readable text" in skipped["empty.txt"]
    assert {d.doc_id for d in result.documents} >= {p.stem for p in SEEDS.values()}
    assert any("class" not in c.text and "小学班额不超过45人" in c.text for c in result.clauses)


def test_duplicate_document_ingests_once(messy_folder):
    result = ingest_files(list(find_files([messy_folder])))
    assert len(result.duplicates) == 1
    assert "copy_of_002_gbk.txt" in result.duplicates[0].path
    assert "002_d6057a83cdbdb456" in result.duplicates[0].reason
    assert sum("小学班额不超过45人" in c.text for c in result.clauses) == 1


def test_size_limit_is_reported_per_file(tmp_path):
    result = ingest_files([SEEDS["002"], SEEDS["000"]], max_bytes=10_000)
    assert [os.path.basename(s.path) for s in result.skipped] == [SEEDS["002"].name]
    assert "too large" in result.skipped[0].reason
    assert [d.doc_id for d in result.documents] == [SEEDS["000"].stem]


def test_empty_document_error_names_the_file(tmp_path):
    path = tmp_path / "blank.txt"
    path.write_text("温馨提示:\n", encoding="utf-8")
    with pytest.raises(EmptyDocumentError, match="blank.txt"):
        parse_file(path)


def test_same_file_name_in_two_folders_gets_two_ids(tmp_path):
    for folder, seed in (("a", "000"), ("b", "004")):
        (tmp_path / folder).mkdir()
        shutil.copy(SEEDS[seed], tmp_path / folder / "方案.txt")
    result = ingest_files(list(find_files([tmp_path])))
    ids = [d.doc_id for d in result.documents]
    assert len(ids) == 2 and len(set(ids)) == 2
    assert all(c.id.startswith(c.doc_id + "#") for c in result.clauses)


def test_store_round_trip_and_missing_index_message(tmp_path, encoder):
    store = IndexStore(tmp_path / "idx")
    with pytest.raises(IndexMissingError, match="policyqa ingest"):
        store.live()
    parsed = parse_file(SEEDS["002"])
    update_index(store.index_dir, encoder, parsed.documents, parsed.clauses)
    index = ClauseIndex.open(store.index_dir, encoder)
    assert list(index.clauses) == parsed.clauses and list(index.documents.values()) == parsed.documents
    assert store.live().manifest["clauses"] == len(parsed.clauses)


def test_crash_during_write_leaves_previous_index_usable(tmp_path, monkeypatch, encoder):
    store = IndexStore(tmp_path / "idx")
    first = parse_file(SEEDS["002"])
    update_index(store.index_dir, encoder, first.documents, first.clauses)
    second = parse_file(SEEDS["001"])
    real_write = segment_module._write_lines

    def crash_on_clauses(path, lines):
        if path.name == "clauses.jsonl":
            raise KeyboardInterrupt  # Ctrl-C halfway through the write
        return real_write(path, lines)

    monkeypatch.setattr(segment_module, "_write_lines", crash_on_clauses)
    with pytest.raises(KeyboardInterrupt):
        update_index(store.index_dir, encoder, second.documents, second.clauses)
    assert [d.doc_id for d in store.load_documents()] == ["002_d6057a83cdbdb456"]
    assert ClauseIndex.open(store.index_dir, encoder).search("班额", k=1)[0].clause.doc_id == "002_d6057a83cdbdb456"
    assert not any(p.name.startswith(".") for p in (*store.versions_dir.iterdir(), *store.segments_dir.iterdir()))


def test_cli_parse_prints_json_lines():
    result = CliRunner().invoke(app, ["parse", str(SEEDS["002"])])
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows[0]["doc_title"] == "关于印发《大力提升义务教育工作质量实施意见》的通知"
    assert any("小学班额不超过45人" in r["text"] for r in rows)
    assert {"id", "doc_id", "heading_path", "text", "norm_text", "position"} <= set(rows[0])


def test_cli_parse_reports_unreadable_file(tmp_path):
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"this is no pdf")
    result = CliRunner().invoke(app, ["parse", str(bad), str(SEEDS["000"])])
    assert result.exit_code == 1
    assert "bad.pdf" in result.stderr
    assert "000_9ad08608ccc3cd51#" in result.stdout  # the good file still parsed


@pytest.mark.model
def test_cli_ingest_then_reingest_replaces_not_duplicates(tmp_path):
    index_dir = tmp_path / "idx"
    runner = CliRunner()
    first = runner.invoke(app, ["ingest", str(DEMO), "--index-dir", str(index_dir)])
    assert first.exit_code == 0, first.output
    assert "clauses added" in first.stderr
    count = IndexStore(index_dir).live().manifest["clauses"]
    second = runner.invoke(app, ["ingest", str(DEMO), "--index-dir", str(index_dir)])
    assert second.exit_code == 0
    assert IndexStore(index_dir).live().manifest["clauses"] == count
    documents = IndexStore(index_dir).load_documents()
    assert len({d.doc_id for d in documents}) == len(documents)


def test_cli_ingest_with_no_documents_says_so(tmp_path):
    result = CliRunner().invoke(app, ["ingest", str(tmp_path), "--index-dir", str(tmp_path / "idx")])
    assert result.exit_code == 1
    assert "no supported files" in result.stderr
