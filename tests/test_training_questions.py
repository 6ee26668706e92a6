"""The reranker's training questions: every line passes the checker, and the checker refuses what would leak or lie."""

from __future__ import annotations

import pytest

from tests.conftest import REPO, SHARED_CORPUS
from training.questions import TrainingQuestion, allowed_sources, check, load

BATCHES = sorted((REPO / "data" / "train" / "batches").glob("*.jsonl"))
TEACHERS_LAW = "laws/education/080_教师法.txt"  # asked about by the eval sets: never a training document


@pytest.fixture(scope="module")
def questions() -> list[TrainingQuestion]:
    if not (SHARED_CORPUS / "TRAIN_DOCS.txt").is_file():
        pytest.skip(f"shared corpus not found at {SHARED_CORPUS}")
    return load(BATCHES)


def test_every_shipped_question_passes_the_checker(questions):
    report = check(questions)
    assert report.errors == []
    answerable = [q for q in questions if q.gold]
    assert len(answerable) >= 4000 and len(questions) - len(answerable) >= 600
    assert len(report.documents) >= 400 and max(report.documents.values()) <= 15


def test_the_checker_refuses_a_phrase_not_in_its_clause_an_eval_document_and_an_eval_question(questions):
    good = next(q for q in questions if q.gold and q.source.startswith("laws/education/"))
    wrong_phrase = good.model_copy(update={"id": "t-1", "gold": ["小学班额不超过45人"]})
    eval_document = good.model_copy(update={"id": "t-2", "source": TEACHERS_LAW, "clause": "080_教师法#第三十五条"})
    eval_question = good.model_copy(update={"id": "t-3", "query": "小学一个班最多能有多少学生?"})
    errors = check([good, wrong_phrase, eval_document, eval_question]).errors
    assert errors == [
        f"t-1: gold phrase '小学班额不超过45人' is not in clause {good.clause}",
        f"t-2: {TEACHERS_LAW} is not a training document (TRAIN_DOCS.txt or messy/, less the documents eval sets ask about)",
        "t-3: the same question is in an eval set",
    ]
    assert TEACHERS_LAW not in allowed_sources()
