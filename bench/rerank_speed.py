"""Single-client latency with and without the reranker: search (k=10) and the chat's answer, in one run.

    python bench/rerank_speed.py [--index-dir data/eval-index-full] [--rounds 2] [--json out.json]

Every question of eval/sets/answers.jsonl and eval/sets/policy.jsonl is asked in turn as a search without
rerank, a search with it, and a chat turn (which searches and has the reranker read the best clauses'
sentences), interleaved so that the machine's noise falls on all three alike. The first round warms the
caches' cold paths and is not counted; the query cache is cleared before each question's searches so
every search encodes its query (as a new question does).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from answer.extractive import Message, compose_answer
from backends.base import open_backend
from embedding.encoder import load_encoder
from eval.dataset import load_queries
from index.pipeline import SearchPipeline
from policyqa.settings import Settings

REPO = Path(__file__).resolve().parent.parent
SETS = [REPO / "eval" / "sets" / "answers.jsonl", REPO / "eval" / "sets" / "policy.jsonl"]


def percentiles(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {"p50": round(statistics.median(ordered) * 1000, 1),
            "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000, 1), "n": len(ordered)}


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, default=REPO / "data" / "eval-index-full")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    settings = Settings(models_dir=REPO / "data" / "models")
    encoder = load_encoder(settings, concurrent=True)  # as a server runs it
    index = open_backend(settings, args.index_dir).open(encoder, pipeline=SearchPipeline.from_settings(settings, True))
    questions = list(dict.fromkeys(q.query for path in SETS for q in load_queries(path)))
    print(f"{len(index.clauses)} clauses, {len(questions)} questions, rerank depth {index.pipeline.options.rerank_depth}")
    times: dict[str, list[float]] = {"search": [], "search + rerank": [], "chat": []}
    for round_ in range(args.rounds):
        for question in questions:
            encoder.clear_query_cache()
            plain = timed(lambda q=question: index.search(q, k=10, rerank=False))
            encoder.clear_query_cache()
            reranked = timed(lambda q=question: index.search(q, k=10))
            encoder.clear_query_cache()
            chat = timed(lambda q=question: compose_answer(index, [Message(role="user", content=q)]))
            if round_ > 0 or args.rounds == 1:
                for name, seconds in zip(times, (plain, reranked, chat), strict=True):
                    times[name].append(seconds)
    results = {name: percentiles(seconds) for name, seconds in times.items()}
    for name, values in results.items():
        print(f"{name:16} p50 {values['p50']:7.1f} ms   p95 {values['p95']:7.1f} ms   ({values['n']} questions)")
    if args.json:
        args.json.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "clauses": len(index.clauses),
                                         "results": results}, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
