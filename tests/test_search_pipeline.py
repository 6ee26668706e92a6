"""The search pipeline's own steps on real demo clauses, with a stand-in backend and reranker (no model).

Fusion, collapse and reranking are written once (index/pipeline.py) for every backend: these pin what the
reranker may change (the order of the best `rerank_depth` groups), what it may not (the rest, the fused
scores) and what it reads (title > headings, then the clause).
"""

from __future__ import annotations

import numpy as np
import pytest

from index.clause_text import passage_text
from index.pipeline import SearchOptions, SearchPipeline
from index.types import Candidates, DocumentInfo, QueryError
from ingest.pipeline import find_files, ingest_files
from tests.conftest import DEMO

CLAUSES = ingest_files(list(find_files([DEMO]))).clauses[:30]


class ListedBackend:
    """Candidates in a fixed order: clause i scores 1 - i/100 on both sides."""

    def __init__(self, clauses) -> None:
        self.clauses = clauses

    def candidates(self, query, terms, depth, mode, filters) -> Candidates:
        ranked = {i: (i + 1, 1 - i / 100) for i in range(min(depth, len(self.clauses)))}
        return Candidates(ranked, ranked, self.clauses.__getitem__)

    def document_info(self, doc_id: str) -> DocumentInfo:
        return DocumentInfo(doc_id=doc_id, title=doc_id, source_path=doc_id)


class PreferringReranker:
    """Relevance by a list of preferred clause ids (first preferred most); records what it read."""

    name = "stand-in"

    def __init__(self, preferred: list[str]) -> None:
        self.preferred = preferred
        self.read: list[str] = []

    def score(self, query: str, passages: list[str]) -> np.ndarray:
        self.read += passages
        by_text = {passage_text(c): c.id for c in CLAUSES}
        return np.array([1.0 - self.preferred.index(by_text[p]) / 10 if by_text[p] in self.preferred else 0.0
                         for p in passages])


def ids(hits) -> list[str]:
    return [h.clause.id for h in hits]


def test_the_reranker_reorders_only_the_best_depth_and_keeps_the_rest_in_fused_order():
    plain = SearchPipeline().search(ListedBackend(CLAUSES), "班额", k=10)
    fused = ids(plain)
    reranker = PreferringReranker([fused[4], fused[2]])
    alone = SearchOptions(rerank_depth=6, rerank_weight=1.0)
    hits = SearchPipeline(alone, reranker).search(ListedBackend(CLAUSES), "班额", k=10)
    assert ids(hits) == [fused[4], fused[2], fused[0], fused[1], fused[3], fused[5], *fused[6:10]]
    assert len(reranker.read) == 6
    assert [h.rerank_score is not None for h in hits] == [True] * 6 + [False] * 4
    assert hits[0].rerank_score == 1.0 and hits[0].score == plain[4].score  # the fused score stays as it was


def test_blended_the_reranker_lifts_what_it_prefers_without_overturning_every_fused_lead():
    """At weight w a group's new score is w * its reranker score + (1 - w) * its fused score, each min-max
    normalised over the reranked head. Over fused[0..5] (fused 1, .8, .6, .4, .2, 0) the reranker prefers
    fused[4] (1.0) and fused[2] (0.9): at 0.2 only fused[2] climbs (past fused[1]), at 0.35 it takes the lead,
    at 0.5 fused[4] passes fused[0] too; at 0 the fused order stays."""
    fused = ids(SearchPipeline().search(ListedBackend(CLAUSES), "班额", k=10))
    reranker = PreferringReranker([fused[4], fused[2]])

    def order(weight: float) -> list[int]:
        options = SearchOptions(rerank_depth=6, rerank_weight=weight)
        hits = SearchPipeline(options, reranker).search(ListedBackend(CLAUSES), "班额", k=6)
        return [fused.index(h) for h in ids(hits)]

    assert order(0.2) == [0, 2, 1, 4, 3, 5]
    assert order(0.35) == [2, 0, 1, 4, 3, 5]
    assert order(0.5) == [2, 4, 0, 1, 3, 5]
    assert order(0.0) == [0, 1, 2, 3, 4, 5]


def test_rerank_false_no_reranker_and_single_retriever_modes_keep_the_retrievers_order():
    fused = ids(SearchPipeline().search(ListedBackend(CLAUSES), "班额", k=10))
    reranker = PreferringReranker([fused[9]])
    hits = SearchPipeline(SearchOptions(), reranker).search(ListedBackend(CLAUSES), "班额", k=10, rerank=False)
    assert ids(hits) == fused and reranker.read == []
    assert all(h.rerank_score is None for h in hits)
    lexical = SearchPipeline(SearchOptions(), reranker).search(ListedBackend(CLAUSES), "班额", k=10, mode="lexical")
    assert ids(lexical) == fused and reranker.read == []  # one retriever alone is shown as it ranks


def test_a_clause_issued_twice_is_read_once_and_its_copy_listed():
    twice = [CLAUSES[0], CLAUSES[1], CLAUSES[0].model_copy(update={"id": "copy#1", "doc_id": "copy"}), *CLAUSES[2:]]
    reranker = PreferringReranker([CLAUSES[1].id])
    hits = SearchPipeline(SearchOptions(rerank_depth=5), reranker).search(ListedBackend(twice), "班额", k=5)
    assert ids(hits)[:2] == [CLAUSES[1].id, CLAUSES[0].id]
    assert [a.clause_id for a in hits[1].also_in] == ["copy#1"]
    assert len(reranker.read) == len(set(reranker.read)) == 5


def test_the_reranker_reads_where_a_clause_stands_then_its_text_as_written():
    reranker = PreferringReranker([])
    SearchPipeline(SearchOptions(rerank_depth=1), reranker).search(ListedBackend(CLAUSES), "班额", k=1)
    clause = CLAUSES[0]
    assert reranker.read == [" > ".join([clause.doc_title, *clause.heading_path]) + "\n" + clause.text]


def test_a_bad_query_is_refused_before_any_backend_or_model_is_asked():
    reranker = PreferringReranker([])
    with pytest.raises(QueryError, match="empty"):
        SearchPipeline(SearchOptions(), reranker).search(ListedBackend(CLAUSES), "   ", k=5)
    assert reranker.read == []
