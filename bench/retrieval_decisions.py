"""Retrieval decisions by measurement: embedding context and fusion method, on one labelled set.

    python bench/retrieval_decisions.py [--set eval/sets/demo.jsonl] [--corpus data/demo ...]

Builds the index twice (clause text alone / title + heading path + text), then scores every
mode and fusion variant with ranx (Recall@1, Recall@5, MRR@10, nDCG@10) in the same run.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from ranx import Qrels, Run, evaluate

from embedding.encoder import load_encoder
from eval.dataset import load_queries, validate_labels
from index.clause_index import ClauseIndex
from ingest.pipeline import find_files, ingest_files
from policyqa.settings import Settings
from writes.commit import update_index

REPO = Path(__file__).resolve().parent.parent
METRICS = ["recall@1", "recall@5", "mrr@10", "ndcg@10"]
VARIANTS = [("dense", None, None), ("lexical", None, None), ("hybrid", "rrf", None)] + [
    ("hybrid", "weighted", w) for w in (0.3, 0.5, 0.7)
]


def score(index: ClauseIndex, queries, qrels) -> dict[str, dict[str, float]]:
    results = {}
    answerable = {q.id: rel for q, rel in ((q, qrels[q.id]) for q in queries) if rel}
    base = index
    for mode, fusion, weight in VARIANTS:
        index = base.with_options(fusion=fusion or "rrf", dense_weight=weight or 0.5)
        run = {}
        for q in queries:
            if q.id in answerable:
                hits = index.search(q.query, k=10, mode=mode)
                run[q.id] = {h.clause.id: float(len(hits) - i) for i, h in enumerate(hits)} or {"none": 0.0}
        name = mode if mode != "hybrid" else f"hybrid-{fusion}" + (f"-{weight}" if weight else "")
        results[name] = evaluate(Qrels({k: {c: 1 for c in v} for k, v in answerable.items()}), Run(run), METRICS)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", type=Path, default=REPO / "eval" / "sets" / "demo.jsonl")
    parser.add_argument("--corpus", type=Path, action="append")
    args = parser.parse_args()
    encoder = load_encoder(Settings(models_dir=REPO / "data" / "models"))
    parsed = ingest_files(list(find_files(args.corpus or [REPO / "data" / "demo"])))
    queries = load_queries(args.set)
    qrels = validate_labels(queries, parsed.clauses)
    print(f"{len(queries)} queries, {len(parsed.clauses)} clauses, model {encoder.model_id}")
    print(f"{'context':8} {'variant':22} " + " ".join(f"{m:>9}" for m in METRICS))
    for with_context in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            update_index(Path(tmp), encoder, parsed.documents, parsed.clauses, with_context=with_context)
            for name, values in score(ClauseIndex.open(Path(tmp), encoder), queries, qrels).items():
                row = " ".join(f"{values[m]:9.3f}" for m in METRICS)
                print(f"{str(with_context):8} {name:22} {row}")


if __name__ == "__main__":
    main()
