"""The CI gate on the chat's answers: the held-out split of eval/sets/answers.jsonl, over the realistic corpus.

The index holds the demo corpus, the education laws, every messy/ page and the laws/other files that
the set's questions come from (281 documents; the whole of laws/other would add ten minutes of
embedding to every CI run). The floors in eval/floors.json were measured on it; raise them when
answers improve, never lower them to make a change pass.
"""

from __future__ import annotations

import json

import pytest

from eval.answers import evaluate_answers, local_chat
from eval.dataset import load_queries, validate_labels
from tests.conftest import DEMO, LAWS, REPO, SHARED_CORPUS

FLOORS = json.loads((REPO / "eval" / "floors.json").read_text(encoding="utf-8"))["answers"]
QUERIES = load_queries(REPO / "eval" / "sets" / "answers.jsonl")


@pytest.fixture(scope="module")
def answer_index(tmp_path_factory, encoder):
    if not LAWS.is_dir():
        pytest.skip(f"laws corpus not found at {LAWS}")
    from index.clause_index import ClauseIndex
    from ingest.pipeline import find_files, ingest_files
    from writes.commit import update_index

    others = sorted({SHARED_CORPUS / q.source for q in QUERIES if q.source and q.source.startswith("laws/other/")})
    index_dir = tmp_path_factory.mktemp("answer-index")
    result = ingest_files(list(find_files([DEMO, LAWS / "education", SHARED_CORPUS / "messy"])) + others)
    update_index(index_dir, encoder, result.documents, result.clauses)
    return ClauseIndex.open(index_dir, encoder)


def test_held_out_answers_stay_above_the_recorded_floors(answer_index):
    validate_labels(QUERIES, answer_index.clauses)
    report = evaluate_answers("answers.jsonl", [q for q in QUERIES if q.split == "heldout"], local_chat(answer_index))
    rates = report.by_split["heldout"]
    wrong = "; ".join(f"{o.query.id} {o.query.query} -> {' | '.join(o.reply.quotes)[:40]}"
                      for o in report.outcomes if o.verdict == "wrong_cited")[:600]
    assert rates["correct"] >= FLOORS["correct_min"], (rates, wrong)
    assert rates["wrong_cited"] <= FLOORS["wrong_cited_max"], (rates, wrong)
    assert rates["unanswerable_refused"] >= FLOORS["unanswerable_refused_min"], rates
