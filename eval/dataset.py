"""Labelled query sets (JSON Lines) and the phrase rule that decides relevance.

One query per line: {"id", "query", "kind", "gold": [phrases], "gold_doc"?}. A clause is relevant
when its compact text (simplified, half-width, no whitespace or punctuation) contains a gold phrase,
so labels survive changes to the chunker.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from ingest.normalize import compact
from ingest.schema import Clause


class LabelledQuery(BaseModel):
    id: str
    query: str
    kind: str
    gold: list[str] = []
    gold_doc: str | None = None


class LabelError(ValueError):
    """A label that cannot be right: a gold phrase found nowhere in the corpus."""


def load_queries(path: Path) -> list[LabelledQuery]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [LabelledQuery.model_validate_json(line) for line in lines if line.strip()]


def relevant_clause_ids(query: LabelledQuery, clauses: list[Clause], compact_texts: list[str]) -> set[str]:
    phrases = [compact(p) for p in query.gold]
    return {c.id for c, text in zip(clauses, compact_texts, strict=True) if any(p in text for p in phrases)}


def validate_labels(queries: list[LabelledQuery], clauses: list[Clause]) -> dict[str, set[str]]:
    """Qrels {query id: relevant clause ids}; raises LabelError for a phrase that matches no clause."""
    compact_texts = [compact(c.text) for c in clauses]
    qrels = {}
    for query in queries:
        for phrase in query.gold:
            if not any(compact(phrase) in text for text in compact_texts):
                raise LabelError(f"query {query.id}: gold phrase {phrase!r} occurs in no clause of the corpus")
        qrels[query.id] = relevant_clause_ids(query, clauses, compact_texts)
    return qrels
