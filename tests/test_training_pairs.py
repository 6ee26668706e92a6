"""Training pairs mined from our own index: the answering clause and sentence against hard negatives."""

from __future__ import annotations

import pytest

from ingest.normalize import compact
from tests.conftest import REPO, SHARED_CORPUS
from index.clause_text import passage_text
from training.mine import mine, split_of
from training.questions import CORPUS, load

BATCH = REPO / "data" / "train" / "batches" / "b02.jsonl"
SOURCE = "laws/education/009_上海市终身教育促进条例.txt"


@pytest.fixture(scope="module")
def lifelong_learning(tmp_path_factory, encoder):
    """Shanghai's lifelong-education regulation beside two other training laws, and its questions."""
    if not (SHARED_CORPUS / "TRAIN_DOCS.txt").is_file():
        pytest.skip(f"shared corpus not found at {SHARED_CORPUS}")
    from index.clause_index import ClauseIndex
    from ingest.pipeline import ingest_files
    from writes.commit import update_index

    questions = [q for q in load([BATCH]) if q.source == SOURCE]
    files = [CORPUS / SOURCE, CORPUS / "laws/education/001_上海市中小学校外实践教育促进规定.txt", CORPUS / "laws/other/0619.txt"]
    parsed = ingest_files(files)
    index_dir = tmp_path_factory.mktemp("train-index")
    update_index(index_dir, encoder, parsed.documents, parsed.clauses)
    return questions, ClauseIndex.open(index_dir, encoder)


def test_each_question_has_its_clause_and_sentence_as_positives_and_hard_negatives_without_its_answer(lifelong_learning):
    questions, index = lifelong_learning
    pairs = list(mine(questions, index))
    by_question = {q.id: [p for p in pairs if p.qid == q.id] for q in questions}
    for question in (q for q in questions if q.gold):
        mined = by_question[question.id]
        assert {p.split for p in mined} == {split_of(SOURCE)}
        clauses = [p for p in mined if p.level == "clause"]
        assert clauses[0].label == 1 and clauses[0].passage == passage_text(index.get_clause(question.clause))
        assert len(clauses) >= 4 and all(p.label == 0 for p in clauses[1:])
        gold = [compact(g) for g in question.gold]
        assert not any(any(g in compact(p.passage) for g in gold) for p in clauses[1:])  # no answer among negatives
        sentences = [p for p in mined if p.level == "sentence"]
        assert [p for p in sentences if p.label == 1] and all(any(g in compact(p.passage) for g in gold)
                                                              for p in sentences if p.label == 1)
    unanswerable = [q for q in questions if not q.gold]
    assert unanswerable and all(by_question[q.id] and all(p.label == 0 for p in by_question[q.id]) for q in unanswerable)
    follow_up = next(q for q in questions if q.follows)
    assert by_question[follow_up.id][0].query.endswith(follow_up.query) and len(by_question[follow_up.id][0].query) > len(follow_up.query)
