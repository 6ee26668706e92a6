"""Running a labelled set against a search function: the local index, a server, or a baseline.

Every searcher returns `Retrieved` items, so metrics, reports and the relevance rule never care
where the results came from. Relevance is decided on the retrieved text (the phrase rule), which
lets chunkers other than ours (the baseline's fixed-size chunks) be scored on the same labels.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx

from backends.base import SearchIndex
from eval.dataset import LabelledQuery
from ingest.normalize import compact


@dataclass
class Retrieved:
    item_id: str
    text: str
    doc_id: str
    dense_score: float | None = None
    # Texts of the same clause re-issued elsewhere (collapsed into this hit): they count as found here.
    also_texts: list[str] = field(default_factory=list)


Searcher = Callable[[str, int, str], list[Retrieved]]


@dataclass
class Outcome:
    """One query's run: what came back, in order, and which gold phrase each hit carries."""

    query: LabelledQuery
    mode: str
    hits: list[Retrieved]
    seconds: float
    # For each hit, the indexes of the gold phrases its text (or a collapsed re-issue) contains.
    hit_phrases: list[list[int]]

    @property
    def first_relevant_rank(self) -> int | None:
        return next((rank for rank, found in enumerate(self.hit_phrases, 1) if found), None)


def phrases_in(texts: list[str], gold: list[str]) -> list[int]:
    compacted = [compact(t) for t in texts]
    return [i for i, phrase in enumerate(gold) if any(compact(phrase) in t for t in compacted)]


def run_query(query: LabelledQuery, search: Searcher, mode: str, k: int) -> Outcome:
    start = time.perf_counter()
    hits = search(query.query, k, mode)
    seconds = time.perf_counter() - start
    found = [phrases_in([h.text, *h.also_texts], query.gold) for h in hits]
    return Outcome(query=query, mode=mode, hits=hits, seconds=seconds, hit_phrases=found)


def local_searcher(index: SearchIndex) -> Searcher:
    """Searches an index in this process (re-issues are fetched once and cached, as `http_searcher` does)."""
    texts: dict[str, str] = {}

    def clause_text(clause_id: str) -> str:
        if clause_id not in texts:
            texts[clause_id] = index.get_clause(clause_id).text
        return texts[clause_id]

    def search(query: str, k: int, mode: str) -> list[Retrieved]:
        return [
            Retrieved(
                item_id=h.clause.id,
                text=h.clause.text,
                doc_id=h.clause.doc_id,
                dense_score=h.dense_score,
                also_texts=[clause_text(a.clause_id) for a in h.also_in],
            )
            for h in index.search(query, k=k, mode=mode)
        ]

    return search


def http_searcher(base_url: str, timeout: float = 60.0) -> Searcher:
    """Searches a running server's /api/search (re-issues are fetched once and cached)."""
    client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)
    texts: dict[str, str] = {}

    def clause_text(clause_id: str) -> str:
        if clause_id not in texts:
            response = client.get(f"/api/clauses/{quote(clause_id, safe='')}", params={"context": 0})
            texts[clause_id] = response.json()["clause"]["text"] if response.status_code == 200 else ""
        return texts[clause_id]

    def search(query: str, k: int, mode: str) -> list[Retrieved]:
        response = client.get("/api/search", params={"q": query, "k": k, "mode": mode})
        response.raise_for_status()
        return [
            Retrieved(
                item_id=r["clause_id"],
                text=r["text"],
                doc_id=r["document"]["doc_id"],
                dense_score=r["scores"]["dense"],
                also_texts=[clause_text(a["clause_id"]) for a in r["also_in"]],
            )
            for r in response.json()["results"]
        ]

    return search
