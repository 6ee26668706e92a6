"""Labelled query sets (JSON Lines) and the phrase rule that decides relevance.

One query per line: {"id", "query", "kind", "gold": [phrases], "gold_doc"?, "split"?, "follows"?}. A
clause is relevant when its compact text (simplified, half-width, no whitespace or punctuation)
contains a gold phrase, so labels survive changes to the chunker.

`eval/sets/sets.json` says which corpus each set is written for, so that `policyqa eval` can pick
the set that matches an index and say what to ingest when none does.
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
    source: str | None = None  # the file holding the answer (answer sets), for readers
    split: str | None = None  # "dev" (decisions may be tuned on it) or "heldout" (reported, never tuned on)
    follows: str | None = None  # a follow-up: the id of the question asked just before it


class SetInfo(BaseModel):
    file: str
    corpus: list[str]  # folders to ingest, relative to the repository root
    about: str


class LabelError(ValueError):
    """A label that cannot be right: a gold phrase found nowhere in the corpus."""


SETS_DIR = Path(__file__).parent / "sets"


def catalog() -> list[SetInfo]:
    """The sets in this repository, the most demanding corpus first."""
    import json

    return [SetInfo(**s) for s in json.loads((SETS_DIR / "sets.json").read_text(encoding="utf-8"))["sets"]]


def missing_phrases(queries: list[LabelledQuery], clauses: list[Clause]) -> list[tuple[str, str]]:
    """(query id, phrase) for every gold phrase that occurs in no clause."""
    corpus = "\n".join(compact(c.text) for c in clauses)
    return [(q.id, phrase) for q in queries for phrase in q.gold if compact(phrase) not in corpus]


def ingest_advice(info: SetInfo, index_dir: str = "data/eval-index") -> str:
    return (f"{info.file} is written for {' + '.join(info.corpus)}: run `policyqa ingest {' '.join(info.corpus)} "
            f"--index-dir {index_dir}` and then `policyqa eval --set eval/sets/{info.file} --index-dir {index_dir}`")


def load_queries(path: Path) -> list[LabelledQuery]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [LabelledQuery.model_validate_json(line) for line in lines if line.strip()]


def relevant_clause_ids(query: LabelledQuery, clauses: list[Clause], compact_texts: list[str]) -> set[str]:
    phrases = [compact(p) for p in query.gold]
    return {c.id for c, text in zip(clauses, compact_texts, strict=True) if any(p in text for p in phrases)}


def validate_labels(queries: list[LabelledQuery], clauses: list[Clause]) -> dict[str, set[str]]:
    """Qrels {query id: relevant clause ids}; raises LabelError for a phrase that matches no clause."""
    missing = missing_phrases(queries, clauses)
    if missing:
        qid, phrase = missing[0]
        raise LabelError(f"query {qid}: gold phrase {phrase!r} occurs in no clause of the corpus")
    compact_texts = [compact(c.text) for c in clauses]
    return {query.id: relevant_clause_ids(query, clauses, compact_texts) for query in queries}
