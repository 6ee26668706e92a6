"""The one search pipeline: check the query, candidates from a backend, fusion, collapse, rerank, hits.

Backends only supply candidates (`CandidateSource.candidates`: the local FAISS + BM25 segments, or a Qdrant
collection); everything else happens here, once, so both rank alike. The pipeline holds its options and
its reranker, both fixed when it is made (`SearchPipeline.from_settings`).
"""

from __future__ import annotations

from collections.abc import Hashable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from embedding.encoder import Encoder
from index.clause_text import passage_text, question_text
from index.collapse import collapse_duplicates
from index.fusion import rrf, weighted_sum
from index.tokenize import expand_query, tokenize
from index.types import AlsoIn, Candidates, DocumentInfo, Filters, Hit, Mode, checked_query
from ingest.normalize import normalize_for_matching
from ingest.schema import Clause
from policyqa.settings import Settings
from rerank.reranker import Reranker, load_reranker

CANDIDATES = 50  # each retriever's depth before fusion


@dataclass(frozen=True)
class SearchOptions:
    """How hybrid search fuses, expands and reranks."""

    # "weighted" (min-max normalised scores, dense_weight on the dense side) or "rrf". Weighted 0.5 beat
    # RRF by 0.05 MRR@10 on eval/sets/demo.jsonl (bench/retrieval_decisions.py).
    fusion: Literal["weighted", "rrf"] = "weighted"
    dense_weight: float = 0.5
    # Everyday words in a query also ask for their policy terms (index/resources/colloquial_terms.txt).
    expand_queries: bool = True
    # How many of the best fused candidates (near-duplicates collapsed) the reranker reorders, and the reranker's
    # share of the score they are reordered by (the rest is the fused score; both min-max normalised over them).
    rerank_depth: int = 10
    rerank_weight: float = 0.5


class CandidateSource(Protocol):
    """What a backend's view of the index supplies to the pipeline."""

    def candidates(self, query: str, terms: list[str], depth: int, mode: Mode, filters: Filters | None) -> Candidates:
        """Each retriever's best `depth` for the query (its BM25 terms given), within the filters."""

    def document_info(self, doc_id: str) -> DocumentInfo: ...


def candidate_depth(k: int) -> int:
    return max(CANDIDATES, 3 * k)


def query_terms(query: str, options: SearchOptions) -> list[str]:
    """The terms BM25 looks up: the query's tokens, with the policy terms of its everyday words if asked."""
    return expand_query(query) if options.expand_queries else tokenize(query)


def query_vectors(encoder: Encoder, queries: list[str]):
    """The vectors dense search looks up: the queries embedded as normalised for matching."""
    return encoder.encode_queries([normalize_for_matching(q) for q in queries])


def query_vector_ahead(encoder: Encoder, query: str) -> Future | None:
    """Start embedding `query` as `query_vectors` will ask for it (an encoder that can: see
    `SentenceTransformerEncoder.encode_query_ahead`); None when there is nothing to wait for."""
    ahead = getattr(encoder, "encode_query_ahead", None)
    return ahead(normalize_for_matching(query)) if ahead else None


def fused_scores(found: Candidates, mode: Mode, options: SearchOptions) -> dict[Hashable, float]:
    if mode == "dense":
        return {r: s for r, (_, s) in found.dense.items()}
    if mode == "lexical":
        return {r: s for r, (_, s) in found.lexical.items()}
    if options.fusion == "rrf":
        return rrf([list(found.dense), list(found.lexical)])
    return weighted_sum({r: s for r, (_, s) in found.dense.items()}, {r: s for r, (_, s) in found.lexical.items()},
                        options.dense_weight)


class SearchPipeline:
    def __init__(self, options: SearchOptions = SearchOptions(), reranker: Reranker | None = None) -> None:
        self.options = options
        self.reranker = reranker

    @classmethod
    def from_settings(cls, settings: Settings, concurrent: bool = False) -> SearchPipeline:
        """The configured pipeline (its reranker loaded; `concurrent` for a server)."""
        return cls(SearchOptions(rerank_depth=settings.rerank_depth, rerank_weight=settings.rerank_weight),
                   load_reranker(settings, concurrent))

    def with_options(self, **changes) -> SearchPipeline:
        """The same reranker with other options (the decision benchmarks compare them)."""
        return SearchPipeline(replace(self.options, **changes), self.reranker)

    def search(self, source: CandidateSource, query: str, k: int = 10, mode: Mode = "hybrid",
               filters: Filters | None = None, rerank: bool = True) -> list[Hit]:
        """The top k hits: fused, near-duplicates collapsed, the best reordered by the reranker (if there is one,
        `rerank` and the mode is hybrid), each with why it matched."""
        query = checked_query(query, k, mode)
        terms = query_terms(query, self.options)
        found = source.candidates(query, terms, candidate_depth(k), mode, filters)
        fused = fused_scores(found, mode, self.options)
        ranked = sorted(fused, key=lambda r: (-fused[r], r))[: candidate_depth(k)]
        # Dense and lexical alone show what one retriever finds (eval compares them): only hybrid is reranked.
        reranking = rerank and self.reranker is not None and mode == "hybrid"
        depth = max(k, self.options.rerank_depth) if reranking else k
        groups = collapse_duplicates(ranked, lambda r: found.clause_of(r).norm_text, limit=depth,
                                     sketched=found.sketches_of(ranked) if found.sketches_of else None)
        relevance: dict[Hashable, float] = {}
        if reranking and groups:
            head = groups[: self.options.rerank_depth]
            scores = self.reranker.score(question_text(query), [passage_text(found.clause_of(row)) for row, _ in head])
            relevance = {row: float(s) for (row, _), s in zip(head, scores, strict=True)}
            order = weighted_sum(relevance, {row: fused[row] for row, _ in head}, self.options.rerank_weight)
            groups = sorted(head, key=lambda g: (-order[g[0]], -relevance[g[0]])) + groups[len(head):]
        return [_hit(found.clause_of(row), fused[row], found.dense.get(row), found.lexical.get(row),
                     relevance.get(row), terms, [found.clause_of(o) for o in others], source.document_info)
                for row, others in groups[:k]]


def _hit(clause: Clause, score: float, dense, lexical, relevance: float | None, terms: list[str],
         also: list[Clause], document_info) -> Hit:
    present = sorted({t for t in terms if t in clause.norm_text}, key=len, reverse=True)
    matched = [t for t in present if not any(t != longer and t in longer for longer in present)]
    return Hit(
        clause=clause,
        document=document_info(clause.doc_id),
        score=score,
        dense_rank=dense[0] if dense else None,
        dense_score=dense[1] if dense else None,
        lexical_rank=lexical[0] if lexical else None,
        lexical_score=lexical[1] if lexical else None,
        rerank_score=relevance,
        matched_terms=matched,
        also_in=[AlsoIn(clause_id=c.id, doc_id=c.doc_id, title=c.doc_title) for c in also],
    )


