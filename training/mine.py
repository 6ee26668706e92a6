"""Training pairs for the reranker, mined from our own index of the training documents.

    python -m training.mine [--index-dir data/train-index] [--out data/train-pairs.jsonl]

For each answerable question: the clause that answers (label 1) against the top hybrid hits that hold no
gold phrase (hard negatives) and the clauses beside the answer in its document (label 0); and the answering
sentence against the other sentences of that clause and of the best hard negative. Each unanswerable
question gives its top hits as negatives. A clause reads as the reranker will read it: its document title and
heading path, then its text. Questions are split by document (one in ten documents for dev), so dev measures
documents the model never trained on.

The index holds only the training documents (`training.questions.allowed_sources`); it is built on first use.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from answer.extractive import Question, split_sentences
from index.clause_text import passage_text, question_text
from ingest.normalize import compact
from ingest.schema import Clause
from training.questions import CORPUS, TrainingQuestion, allowed_sources, load

REPO = Path(__file__).resolve().parent.parent
HARD_NEGATIVES = 6
NEIGHBOURS = 1  # on each side of the answer
SEARCH_DEPTH = 30
DEV_SHARE = 10  # one document in ten


class Pair(BaseModel):
    qid: str
    query: str
    passage: str
    label: int
    level: str  # "clause" or "sentence"
    split: str  # "train" or "dev"


def split_of(source: str | None) -> str:
    digest = hashlib.blake2b((source or "").encode("utf-8"), digest_size=4).digest()
    return "dev" if int.from_bytes(digest, "little") % DEV_SHARE == 0 else "train"


def search_texts(questions: list[TrainingQuestion]) -> dict[str, str]:
    """Each question as the chat resolves it: a follow-up is asked with the question before it."""
    by_id = {q.id: q for q in questions}
    return {q.id: Question(current=q.query, previous=by_id[q.follows].query if q.follows else None).search_text
            for q in questions}


def holds_gold(clause: Clause, gold: list[str]) -> bool:
    text = compact(clause.text)
    return any(compact(phrase) in text for phrase in gold)


def pairs_for(question: TrainingQuestion, query: str, index, split: str) -> Iterator[Pair]:
    asked = question_text(query)

    def pair(passage: str, label: int, level: str) -> Pair:
        return Pair(qid=question.id, query=asked, passage=passage, label=label, level=level, split=split)

    hits = index.search(query, k=SEARCH_DEPTH)
    negatives = [h.clause for h in hits if not holds_gold(h.clause, question.gold)][:HARD_NEGATIVES]
    if not question.gold:
        yield from (pair(passage_text(c), 0, "clause") for c in negatives)
        return
    answer = index.get_clause(question.clause)
    if answer is None:  # its document was a duplicate of another file's text: the index keeps the other
        return
    yield pair(passage_text(answer), 1, "clause")
    before, after = index.neighbours(answer.id, NEIGHBOURS, NEIGHBOURS)
    siblings = [c for c in before + after if not holds_gold(c, question.gold)]
    yield from (pair(passage_text(c), 0, "clause") for c in negatives + siblings)
    gold = [compact(p) for p in question.gold]
    for sentence in split_sentences(answer.text):
        yield pair(passage_text(answer, sentence), int(any(p in compact(sentence) for p in gold)), "sentence")
    for sentence in split_sentences(negatives[0].text) if negatives else []:
        yield pair(passage_text(negatives[0], sentence), 0, "sentence")


def training_index(index_dir: Path):
    """The index of the training documents, built on first use."""
    from embedding.encoder import load_encoder
    from index.clause_index import ClauseIndex
    from ingest.pipeline import ingest_files
    from policyqa.settings import Settings
    from storage.store import IndexStore
    from writes.commit import update_index

    # A server's session options: no threads spinning between calls (mining may share its cores).
    encoder = load_encoder(Settings(models_dir=REPO / "data" / "models"), concurrent=True)
    if not IndexStore(index_dir).exists():
        parsed = ingest_files([CORPUS / source for source in sorted(allowed_sources())])
        update_index(index_dir, encoder, parsed.documents, parsed.clauses)
    return ClauseIndex.open(index_dir, encoder)


def mine(questions: list[TrainingQuestion], index) -> Iterator[Pair]:
    texts = search_texts(questions)
    for question in questions:
        yield from pairs_for(question, texts[question.id], index, split_of(question.source))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, default=REPO / "data" / "train-index")
    parser.add_argument("--out", type=Path, default=REPO / "data" / "train-pairs.jsonl")
    args = parser.parse_args()
    questions = load(sorted((REPO / "data" / "train" / "batches").glob("*.jsonl")))
    index = training_index(args.index_dir)
    with args.out.open("w", encoding="utf-8") as out:
        for pair in mine(questions, index):
            out.write(json.dumps(pair.model_dump(), ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
