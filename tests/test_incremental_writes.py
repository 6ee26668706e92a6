"""Writes cost what changed: an index grown by small writes answers like one built at once, merges keep it so,
a kill -9 during a merge loses nothing, and the CLI and the server replace a changed file the same way."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from eval.dataset import load_queries
from index.clause_index import ClauseIndex
from index.clause_text import clause_input
from index.types import Filters
from ingest.pipeline import find_files, ingest_files
from policyqa.cli import app
from policyqa.settings import Settings
from storage.store import IndexStore
from tests.conftest import DEMO, REPO, SEEDS, wait_until
from writes.commit import merge_segments, merge_start, update_index

QUERIES = [q.query for q in load_queries(REPO / "eval" / "sets" / "demo.jsonl")]


class SameVectors:
    """The real model, with each passage encoded once: int8 activations are scaled per batch, so a clause
    embedded in another batch differs in the third decimal. Reusing the vectors isolates what the index does."""

    def __init__(self, encoder) -> None:
        self._encoder, self.model_id, self.dim = encoder, encoder.model_id, encoder.dim
        self._known: dict[str, np.ndarray] = {}

    def encode_passages(self, texts):
        missing = [t for t in dict.fromkeys(texts) if t not in self._known]
        if missing:
            self._known.update(zip(missing, self._encoder.encode_passages(missing), strict=True))
        return np.stack([self._known[t] for t in texts])

    def encode_queries(self, texts):
        return self._encoder.encode_queries(texts)


@pytest.fixture(scope="module")
def same_vectors(encoder):
    wrapped = SameVectors(encoder)
    wrapped.encode_passages([clause_input(c, True) for c in ingest_files(sorted(find_files([DEMO]))).clauses])
    return wrapped


def _top10(index: ClauseIndex, query: str, mode: str, filters: Filters | None = None):
    return [(h.clause.id, h.score) for h in index.search(query, k=10, mode=mode, filters=filters)]


def _assert_same_answers(grown: ClauseIndex, scratch: ClauseIndex) -> None:
    assert sorted(c.id for c in grown.clauses) == sorted(c.id for c in scratch.clauses)
    for query in QUERIES:
        for mode in ("hybrid", "dense", "lexical"):
            a, b = _top10(grown, query, mode), _top10(scratch, query, mode)
            assert [i for i, _ in a] == [i for i, _ in b], (query, mode)
            assert np.allclose([s for _, s in a], [s for _, s in b], atol=1e-5), (query, mode)
    only_002 = Filters(doc_id="002_d6057a83cdbdb456")
    a, b = _top10(grown, "班额标准", "hybrid", only_002), _top10(scratch, "班额标准", "hybrid", only_002)
    assert [i for i, _ in a] == [i for i, _ in b] and np.allclose([s for _, s in a], [s for _, s in b], atol=1e-5)
    assert {i.split("#")[0] for i, _ in a} == {"002_d6057a83cdbdb456"}


def test_an_index_grown_by_small_writes_answers_like_one_built_at_once(tmp_path, same_vectors):
    files = sorted(find_files([DEMO]))
    everything = ingest_files(files)
    update_index(tmp_path / "scratch", same_vectors, everything.documents, everything.clauses)
    scratch = ClauseIndex.open(tmp_path / "scratch", same_vectors)

    grown_dir = tmp_path / "grown"
    segments_left = {}
    for merge in (False, True):  # segments left as written, then merged by the size tiers
        shutil.rmtree(grown_dir, ignore_errors=True)
        for path in files:  # one file per write
            one = ingest_files([path])
            update_index(grown_dir, same_vectors, one.documents, one.clauses, replace_sources={str(path)}, merge=merge)
        removed = everything.documents[0]
        update_index(grown_dir, same_vectors, [], [], remove_doc_ids={removed.doc_id}, merge=merge)
        assert removed.doc_id not in ClauseIndex.open(grown_dir, same_vectors).documents
        again = ingest_files([files[0]])  # re-added: its vectors are reused
        update_index(grown_dir, same_vectors, again.documents, again.clauses, replace_sources={str(files[0])}, merge=merge)
        segments_left[merge] = len(IndexStore(grown_dir).live().segments)
        _assert_same_answers(ClauseIndex.open(grown_dir, same_vectors), scratch)
    assert segments_left[False] == len(files) and segments_left[True] < segments_left[False]


def test_a_write_reads_and_writes_only_what_changed(tmp_path, demo_index_dir, encoder):
    shutil.copytree(demo_index_dir, tmp_path / "index")
    store = IndexStore(tmp_path / "index")
    before = {p: p.stat().st_mtime_ns for p in store.segments_dir.rglob("*") if p.is_file()}
    text = SEEDS["002"].read_text(encoding="utf-8").replace("小学班额不超过45人", "小学班额不超过40人")
    (tmp_path / SEEDS["002"].name).write_text(text, encoding="utf-8")  # the same file name: the same doc id
    changed = ingest_files([tmp_path / SEEDS["002"].name])
    update_index(store.index_dir, encoder, changed.documents, changed.clauses, merge=False)
    manifest = store.live().manifest
    # Same doc id: the new document replaces the old one; only its changed clause was embedded.
    assert manifest["embedded_now"] == 1 and manifest["reused_embeddings"] == len(changed.clauses) - 1
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in before.items())  # older segments untouched
    new_segment = store.segment_folder(store.live().segments[-1][0])
    assert json.loads((new_segment / "manifest.json").read_text())["clauses"] == len(changed.clauses)
    hits = ClauseIndex.open(store.index_dir, encoder).search("小学班额", k=3)
    assert "小学班额不超过40人" in hits[0].clause.text
    assert not any("小学班额不超过45人" in h.clause.text for h in hits)


@pytest.mark.parametrize("live, rows, start", [
    ([50_000], [50_000], None),  # one segment: nothing to merge
    ([50_000, 60], [50_000, 60], None),  # a small write beside a big segment stays until its tier fills
    ([50_000, 100, 50, 50], [50_000, 100, 50, 50], 1),  # 50 + 50 reach 100, then 200 ≥ 100: merge from 1
    ([50_000, 30_000, 25_000], [50_000, 30_000, 25_000], 0),  # the tail reaches the big one: everything
    ([50_000, 10, 20], [50_000, 10, 20], 1),
    ([20_000, 100], [50_000, 100], 0),  # more deleted than live: compacted
    ([10_000] + [1] * 13, [10_000] + [1] * 13, 1),  # 13 tiny ones: past MAX_SEGMENTS, merge anyway
])
def test_the_merge_policy_merges_the_newest_segments_by_size_tiers(live, rows, start):
    assert merge_start(live, rows) == start


def test_kill_9_during_a_merge_leaves_the_last_version_and_the_next_write_cleans_up(tmp_path, same_vectors):
    index_dir = tmp_path / "index"
    for path in sorted(find_files([DEMO])):
        one = ingest_files([path])
        update_index(index_dir, same_vectors, one.documents, one.clauses, merge=False)
    store = IndexStore(index_dir)
    version, documents = store.current_version(), sorted(d.doc_id for d in store.load_documents())
    # A merge that stalls after writing the merged segment's clauses, in a process of its own.
    script = ("import sys, time\nfrom storage import segment\nwrite = segment._write_lines\n"
              "def stalling(path, lines):\n    offsets = write(path, lines)\n"
              "    if path.name == 'clauses.jsonl':\n        print('stalled', flush=True); time.sleep(600)\n"
              "    return offsets\nsegment._write_lines = stalling\n"
              "from writes.commit import merge_segments\nmerge_segments(sys.argv[1])\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(index_dir)], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().strip() == "stalled"
    staging = [p for p in store.segments_dir.iterdir() if p.name.startswith(".")]
    assert staging and (staging[0] / "clauses.jsonl").is_file()
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    assert store.current_version() == version
    assert sorted(d.doc_id for d in store.load_documents()) == documents
    assert "小学班额不超过45人" in ClauseIndex.open(index_dir, same_vectors).search("班额标准", k=1)[0].clause.text
    assert merge_segments(index_dir) is not None  # the next write takes the lock, cleans up and merges
    assert not any(p.name.startswith(".") for p in store.segments_dir.iterdir())
    assert sorted(d.doc_id for d in store.load_documents()) == documents
    assert len(store.live().segments) < len(sorted(find_files([DEMO])))


def _server_upload(settings: Settings, encoder, name: str, content: bytes) -> int:
    with TestClient(create_app(settings, encoder)) as client:
        return client.post("/api/documents?wait=true", files=[("files", (name, content, "text/plain"))]).status_code


def test_the_cli_and_the_server_replace_a_changed_file_the_same_way(tmp_path, encoder):
    """A changed file replaces its documents; one that no longer parses leaves them as they were."""
    from typer.testing import CliRunner

    original = SEEDS["002"].read_bytes()
    changed = original.decode("utf-8").replace("小学班额不超过45人", "小学班额不超过42人").encode("utf-8")
    outcomes = {}
    for path in ("cli", "server"):
        settings = Settings(index_dir=tmp_path / path / "index", upload_dir=tmp_path / path / "uploads",
                            models_dir=REPO / "data" / "models")
        inbox = tmp_path / path / "inbox"
        inbox.mkdir(parents=True)
        steps = []
        for content in (original, changed, b"\xff\xfe\x00broken" * 3):
            if path == "cli":
                (inbox / "notice.txt").write_bytes(content)
                CliRunner().invoke(app, ["ingest", str(inbox / "notice.txt"), "--index-dir", str(settings.index_dir)])
            else:
                assert _server_upload(settings, encoder, "notice.txt", content) in (200, 422)
            index = ClauseIndex.open(settings.index_dir, encoder)
            hit = index.search("小学班额", k=1)[0]
            steps.append((len(index.documents), hit.clause.text.count("不超过42人") > 0))
        outcomes[path] = steps
    # Added; replaced by the changed text; the broken version changed nothing.
    assert outcomes["cli"] == outcomes["server"] == [(1, False), (1, True), (1, True)]


def test_the_server_merges_in_jobs_of_its_own_that_the_jobs_api_lists(tmp_path, demo_index_dir, encoder):
    shutil.copytree(demo_index_dir, tmp_path / "index")
    settings = Settings(index_dir=tmp_path / "index", upload_dir=tmp_path / "uploads", models_dir=REPO / "data" / "models")
    with TestClient(create_app(settings, encoder)) as client:
        for name in ("一.txt", "二.txt"):  # two small writes: each leaves a merge job behind it
            text = f"（{name}的副本）\n" + SEEDS["000"].read_text(encoding="utf-8")  # not a duplicate of seed 000
            assert client.post("/api/documents?wait=true", files=[("files", (name, text.encode(), "text/plain"))]).status_code == 200

        def all_ended() -> list[dict] | None:
            jobs = client.get("/api/jobs").json()["jobs"]
            return None if any(j["state"] in ("queued", "running") for j in jobs) else jobs

        jobs = wait_until(all_ended, "every job to end", every=0.2)
    merges = [j for j in jobs if j["kind"] == "merge"]
    assert merges and all(j["state"] == "done" and "version" in j["result"] for j in merges)
    # The second small segment reached the first one's size: they were merged (and with the demo's, if as large).
    assert any(j["result"]["version"] for j in merges)
    assert len(IndexStore(tmp_path / "index").live().segments) <= 2
