"""Answer decisions by measurement: how candidate sentences are scored, and when to say 未找到.

    python bench/answer_decisions.py --index-dir data/eval-index-full [--set eval/sets/answers.jsonl]

On the dev split only: every question is retrieved once and every candidate sentence gets its
features (encoder cosine, coverage, clause rank, intent supplied) and its label (it contains a
gold phrase). Then every weight combination of the grid picks each question's best sentence, and
the 未找到 threshold on that sentence's score is swept. A combination is judged by correct minus
wrong-but-cited (answerable questions) among those that refuse at least 80% of the unanswerable
ones. The held-out split is never read here; `policyqa eval` reports it with the chosen constants.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

from index.answer import Message, candidates, resolve_question, retrieve
from index.clause_index import ClauseIndex
from ingest.normalize import compact
from eval.dataset import load_queries
from policyqa.settings import Settings, load_encoder

REPO = Path(__file__).resolve().parent.parent
GRID = {"dense": [0, 2, 4, 6, 8, 12], "coverage": [0, 0.5, 1, 2], "rank": [0, 0.1, 0.2, 0.4], "intent": [0, 0.1, 0.3, 0.6]}
REFUSED_MIN = 0.8


def features(index: ClauseIndex, queries) -> list[tuple[bool, np.ndarray, np.ndarray]]:
    """Per question: answerable?, a (candidates x 4) feature matrix, which candidates contain gold."""
    by_id = {q.id: q for q in queries}
    rows = []
    for q in queries:
        first = by_id.get(q.follows) if q.follows else None
        messages = ([Message(role="user", content=first.query), Message(role="assistant", content="…")] if first
                    else []) + [Message(role="user", content=q.query)]
        question, hits = retrieve(index, messages)
        found = candidates(resolve_question(messages), hits)
        dense = index.similarities(question.search_text, [c.sentence for c in found]) if found else np.empty(0)
        matrix = np.array([[d, c.coverage, 1 / (c.hit + 1), float(c.intent)] for d, c in zip(dense, found, strict=True)])
        gold = [compact(p) for p in q.gold]
        labels = np.array([any(g in compact(c.sentence) for g in gold) for c in found], dtype=bool)
        rows.append((bool(q.gold), matrix.reshape(-1, 4), labels))
    return rows


def sweep(rows, weights: np.ndarray) -> tuple[float, float, dict]:
    """The best threshold for these weights: (objective, threshold, rates)."""
    best_scores, best_right, answerable = [], [], []
    for is_answerable, matrix, labels in rows:
        scores = matrix @ weights if len(matrix) else np.array([-np.inf])
        top = int(np.argmax(scores))
        best_scores.append(scores[top])
        best_right.append(bool(len(labels)) and bool(labels[top]))
        answerable.append(is_answerable)
    best_scores, best_right, answerable = map(np.array, (best_scores, best_right, answerable))
    n_ans, n_un = answerable.sum(), (~answerable).sum()
    result = (-np.inf, 0.0, {})
    for threshold in np.unique(best_scores[np.isfinite(best_scores)]):
        answered = best_scores >= threshold
        refused_un = (~answered & ~answerable).sum() / max(n_un, 1)
        if refused_un < REFUSED_MIN:
            continue
        correct = (answered & best_right & answerable).sum() / n_ans
        wrong = (answered & ~best_right & answerable).sum() / n_ans
        if correct - wrong > result[0]:
            result = (correct - wrong, float(threshold),
                      {"correct": correct, "wrong_cited": wrong, "refused_answerable": 1 - correct - wrong,
                       "unanswerable_refused": refused_un})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", type=Path, default=REPO / "eval" / "sets" / "answers.jsonl")
    parser.add_argument("--index-dir", type=Path, default=REPO / "data" / "eval-index-full")
    args = parser.parse_args()
    index = ClauseIndex.open(args.index_dir, load_encoder(Settings(models_dir=REPO / "data" / "models")))
    dev = [q for q in load_queries(args.set) if q.split == "dev"]
    rows = features(index, dev)
    picked_any = sum(bool(labels.any()) for ok, _, labels in rows if ok) / sum(ok for ok, _, _ in rows)
    print(f"dev: {len(dev)} questions; a candidate containing gold exists for {picked_any:.1%} of the answerable")
    results = []
    for combo in itertools.product(*GRID.values()):
        objective, threshold, rates = sweep(rows, np.array(combo, dtype=float))
        if rates:
            results.append((objective, combo, threshold, rates))
    results.sort(key=lambda r: -r[0])
    print("dense coverage rank intent | threshold | correct wrong_cited refused | unanswerable refused")
    for objective, combo, threshold, r in results[:15]:
        print(" ".join(f"{w:>5}" for w in combo) + f" | {threshold:9.3f} | {r['correct']:7.1%} {r['wrong_cited']:11.1%} "
              f"{r['refused_answerable']:7.1%} | {r['unanswerable_refused']:.1%}")


if __name__ == "__main__":
    main()
