"""The reranker by measurement: before/after, rerank depth and weight, and the refusal threshold, on
eval/sets/answers.jsonl.

    python bench/reranker_decisions.py --index-dir data/eval-index-full --split dev      # decide
    python bench/reranker_decisions.py --index-dir data/eval-index-full --split heldout  # report, once decided

The index holds the realistic corpus (demo + all laws + messy: `policyqa ingest data/demo ../shared/corpus/laws
../shared/corpus/messy --index-dir data/eval-index-full`). Every variant runs in the same process on one open
index: `before` is fusion alone with the term-overlap sentence picker (POLICYQA_RERANKER=none), the others
rerank the best N fused candidates (by the reranker's share W of the score, the fused score the rest) and pick
sentences with the reranker (from the best `--hits-read` clauses, less `--rank-penalties` for each place a
sentence's clause stands below the first). The reranker's scores are kept per (question, passage), so each
variant costs only what is new. For each: retrieval (hybrid, k=10:
Recall@1, Recall@5, MRR@10) and the chat's answers (correct, wrong-but-cited, refused although answerable,
unanswerable refused), overall, by kind, and apart for questions about documents outside TRAIN_DOCS.txt.
The answers are asked with no threshold and each reply's relevance kept, so the refusal threshold is swept
afterwards over the same replies (`--split dev` prints the sweep).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

from answer.extractive import ANSWER_MIN_RELEVANCE, Message, PickingOptions, compose_answer
from backends.base import open_backend
from embedding.encoder import load_encoder
from eval.answers import AnswerOutcome, ChatReply, evaluate_answers, judge, rates
from eval.dataset import load_queries
from eval.harness import run_modes
from eval.metrics import scores, scores_by_kind
from eval.runner import local_searcher
from index.pipeline import SearchOptions, SearchPipeline
from policyqa.settings import Settings
from rerank.reranker import load_reranker
from training.questions import listed_documents

REPO = Path(__file__).resolve().parent.parent
RETRIEVAL = ["recall@1", "recall@5", "mrr@10"]
DEPTHS = (10, 20, 30)
WEIGHTS = (1.0,)
THRESHOLDS = [round(0.01 * i, 2) for i in range(5, 91)]


class RememberingReranker:
    """The reranker, each (question, passage) scored once for every variant of the run."""

    def __init__(self, reranker) -> None:
        self.name, self._reranker, self._known = reranker.name, reranker, {}

    def score(self, query: str, passages: list[str]) -> np.ndarray:
        new = [p for p in dict.fromkeys(passages) if (query, p) not in self._known]
        if new:
            self._known.update(zip(((query, p) for p in new), self._reranker.score(query, new).tolist(), strict=True))
        return np.array([self._known[(query, p)] for p in passages], dtype=np.float32)


def measuring_chat(index, relevance: dict[str, float | None], picking: PickingOptions):
    """The chat with no refusal threshold; each reply's relevance kept (by question) for the sweep."""
    def chat(messages: list[Message]) -> ChatReply:
        start = time.perf_counter()
        answer = compose_answer(index, messages, replace(picking, min_relevance=0.0))
        relevance[messages[-1].content] = answer.relevance
        quotes = [q for source in answer.sources for q in source.quotes]
        return ChatReply(text=answer.text, quotes=quotes, seconds=time.perf_counter() - start)
    return chat


def with_threshold(outcomes: list[AnswerOutcome], relevance: dict[str, float | None], threshold: float):
    """The verdicts had every reply below `threshold` been a refusal."""
    refused = ChatReply(text="", quotes=[])
    return [AnswerOutcome(o.query, o.reply, judge(o.query, refused))
            if (relevance.get(o.query.query) or 0.0) < threshold else o for o in outcomes]


def measure(name: str, index, queries, threshold: float | None, picking: PickingOptions = PickingOptions()) -> dict:
    outcomes = run_modes(queries, local_searcher(index), ["hybrid"], 10)["hybrid"]
    relevance: dict[str, float | None] = {}
    answers = evaluate_answers(name, queries, measuring_chat(index, relevance, picking)).outcomes
    unthresholded = {k: round(v, 3) for k, v in rates(answers).items()}
    if threshold is not None:
        answers = with_threshold(answers, relevance, threshold)
    listed = listed_documents()  # read once, not per question
    groups = {"all": lambda q: True, "outside TRAIN_DOCS": lambda q: q.source not in listed,
              "in TRAIN_DOCS (held out of training)": lambda q: q.source in listed}
    result = {"variant": name, "groups": {}}
    for group, keep in groups.items():
        searched = [o for o in outcomes if keep(o.query)]
        answered = [o for o in answers if keep(o.query)]
        if not searched:
            continue
        result["groups"][group] = {"retrieval": {m: round(float(v), 3) for m, v in scores(searched).items() if m in RETRIEVAL},
                                   "answers": {k: round(v, 3) for k, v in rates(answered).items()}}
    kinds: dict[str, Counter] = defaultdict(Counter)
    for outcome in answers:
        kinds[outcome.query.kind][outcome.verdict] += 1
    result["answers_by_kind"] = {k: dict(v) for k, v in sorted(kinds.items())}
    result["retrieval_by_kind"] = {k: {m: round(float(v[m]), 3) for m in RETRIEVAL} | {"queries": v["queries"]}
                                   for k, v in scores_by_kind(outcomes).items()}
    result["answers_without_threshold"] = unthresholded if threshold is not None else None
    swept = threshold is None and index.pipeline.reranker is not None
    result["sweep"] = {t: rates(with_threshold(answers, relevance, t)) for t in THRESHOLDS} if swept else {}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, default=REPO / "data" / "eval-index-full")
    parser.add_argument("--split", choices=["dev", "heldout"], default="dev")
    parser.add_argument("--depths", type=int, nargs="*", default=list(DEPTHS))
    parser.add_argument("--weights", type=float, nargs="*", default=list(WEIGHTS))
    parser.add_argument("--hits-read", type=int, nargs="*", default=[PickingOptions().hits_read],
                        help="how many of the best clauses the chat reads the sentences of")
    parser.add_argument("--rank-penalties", type=float, nargs="*", default=[PickingOptions().rank_penalty],
                        help="taken from a sentence's relevance for each place its clause stands below the first")
    parser.add_argument("--term-sentences", action="store_true",
                        help="also measure each variant with term overlap picking the sentences of the reranked hits")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    settings = Settings(models_dir=REPO / "data" / "models")
    encoder, reranker = load_encoder(settings), RememberingReranker(load_reranker(settings))
    backend = open_backend(settings, args.index_dir)
    before = backend.open(encoder)
    queries = [q for q in load_queries(REPO / "eval" / "sets" / "answers.jsonl") if q.split == args.split]
    print(f"{len(queries)} questions of the {args.split} split; {len(before.clauses)} clauses; reranker {reranker.name}")
    # dev: no threshold, swept afterwards; held-out: the calibrated one.
    threshold = ANSWER_MIN_RELEVANCE if args.split == "heldout" else None
    results = [measure("before", before, queries, None)]
    for depth in args.depths:
        for weight in args.weights:
            pipeline = SearchPipeline(SearchOptions(rerank_depth=depth, rerank_weight=weight), reranker)
            view = backend.open(encoder, before, pipeline)
            for hits_read in args.hits_read:
                for penalty in args.rank_penalties:
                    picking = PickingOptions(hits_read=hits_read, rank_penalty=penalty)
                    name = f"rerank {depth} weight {weight}, reads {hits_read}, penalty {penalty}"
                    results.append(measure(name, view, queries, threshold, picking))
            if args.term_sentences:
                picking = PickingOptions(sentences_by_reranker=False)
                results.append(measure(f"rerank {depth} weight {weight}, term sentences", view, queries, None, picking))
    for result in results:
        print(f"\n== {result['variant']}")
        for group, values in result["groups"].items():
            print(f"  {group:38} {values['retrieval']}  {values['answers']}")
        if result["answers_without_threshold"]:
            print(f"  {'all, no refusal threshold':38} {result['answers_without_threshold']}")
        for threshold_value, values in result["sweep"].items():
            print(f"  threshold {threshold_value:.2f}: correct {values['correct']:.3f} wrong {values['wrong_cited']:.3f} "
                  f"refused {values['refused_answerable']:.3f} unanswerable refused {values['unanswerable_refused']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
