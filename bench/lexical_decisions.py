"""Lexical-side decisions by measurement: title and headings in BM25, everyday-word query expansion.

    python bench/lexical_decisions.py --index-dir data/eval-index [--set eval/sets/policy.jsonl]

Opens a built index (its dense side is reused as is), rebuilds the BM25 index in memory for each
variant and scores lexical and every hybrid fusion variant with ranx in the same run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from retrieval_decisions import METRICS, score

from embedding.encoder import load_encoder
from eval.dataset import load_queries, validate_labels
from index.clause_index import ClauseIndex
from index.clause_text import clause_input
from index.tokenize import tokenize
from policyqa.settings import Settings

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--set", type=Path, default=REPO / "eval" / "sets" / "policy.jsonl")
    args = parser.parse_args()
    base = ClauseIndex.open(args.index_dir, load_encoder(Settings(models_dir=REPO / "data" / "models")))
    index = base
    queries = load_queries(args.set)
    qrels = validate_labels(queries, index.clauses)
    print(f"{len(queries)} queries, {len(index.clauses)} clauses ({args.set.name})")
    print(f"{'BM25 input':14} {'expansion':9} {'variant':22} " + " ".join(f"{m:>9}" for m in METRICS))
    for context in (False, True):
        relexed = base.with_lexical([tokenize(clause_input(c, context)) for c in base.clauses])
        for expand in (False, True):
            index = relexed.with_options(expand_queries=expand)
            for name, values in score(index, queries, qrels).items():
                row = " ".join(f"{values[m]:9.3f}" for m in METRICS)
                print(f"{'title+headings' if context else 'clause':14} {expand!s:9} {name:22} {row}", flush=True)


if __name__ == "__main__":
    main()
