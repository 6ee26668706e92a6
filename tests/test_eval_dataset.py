"""The labelled demo set: every gold phrase is in the corpus, and a typo in a label is an error."""

from __future__ import annotations

import pytest

from eval.dataset import LabelError, LabelledQuery, load_queries, validate_labels
from tests.conftest import REPO


def test_demo_set_labels_all_match_clauses(seeds):
    queries = load_queries(REPO / "eval" / "sets" / "demo.jsonl")
    clauses = [c for parsed in seeds.values() for c in parsed.clauses]
    qrels = validate_labels(queries, clauses)
    assert len(queries) >= 25
    # Every labelled query has a relevant clause; the no-answer ones have none.
    assert all(bool(qrels[q.id]) == bool(q.gold) for q in queries)
    assert any(not q.gold for q in queries)
    # Traditional text matches a simplified gold phrase.
    assert any(cid.startswith("001_") for cid in qrels["d24"])


def test_typo_in_a_gold_phrase_is_an_error(seeds):
    typo = LabelledQuery(id="x", query="班额", kind="keyword", gold=["小学班额不超过46人"])
    with pytest.raises(LabelError, match="46人"):
        validate_labels([typo], seeds["002"].clauses)
