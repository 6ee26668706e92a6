"""Abbreviation expansion by measurement: none, query side, index side, both, and the dense query.

    python bench/abbreviation_decisions.py --index-dir data/eval-index-words [--set eval/sets/policy.jsonl]

Opens a built index (its dense side is reused as is), rebuilds the BM25 index in memory with today's
tokenizer, with or without the full forms of the abbreviations each clause contains (index side),
and searches with or without them in the query (query side; `dense` also appends them to the text the
query embedding reads: `双减（作业负担、校外培训负担）`). Scores hybrid with the eval harness, overall
and for the `abbreviation` kind, as `policyqa eval --mode hybrid` does. Chosen: index+query (tokenize
adds the full forms to clauses and queries alike); results in eval/sets/README.md.
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

from embedding.encoder import load_encoder
from eval.dataset import load_queries, validate_labels
from eval.harness import run_modes
from eval.metrics import scores, scores_by_kind
from eval.runner import local_searcher
from index import clause_index
from index.clause_index import ClauseIndex
from index.clause_text import clause_input
from index.tokenize import abbreviation_forms, expand_query, tokenize
from policyqa.settings import Settings

REPO = Path(__file__).resolve().parent.parent
METRICS = ["recall@5", "mrr@10"]
# name: (full forms in the clauses' BM25 tokens, in the query's tokens, in the query embedding's text)
VARIANTS = {
    "none": (False, False, False),
    "query": (False, True, False),
    "index": (True, False, False),
    "index+query": (True, True, False),
    "query+dense": (False, True, True),
}


class ExpandedQueries:
    """The index's encoder, reading each query with its abbreviations' full forms appended."""

    def __init__(self, encoder) -> None:
        self._encoder = encoder

    def __getattr__(self, name):
        return getattr(self._encoder, name)

    def encode_queries(self, texts: list[str]):
        def expanded(text: str) -> str:
            forms = abbreviation_forms(tokenize(text))
            return f"{text}（{'、'.join(forms)}）" if forms else text

        return self._encoder.encode_queries([expanded(t) for t in texts])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--set", type=Path, default=REPO / "eval" / "sets" / "policy.jsonl")
    args = parser.parse_args()
    encoder = load_encoder(Settings(models_dir=REPO / "data" / "models"))
    base = ClauseIndex.open(args.index_dir, encoder)
    queries = load_queries(args.set)
    validate_labels(queries, base.clauses)
    inputs = [clause_input(c, True) for c in base.clauses]
    lexical = {side: base.with_lexical([tokenize(text, side) for text in inputs]) for side in (False, True)}
    print(f"{len(queries)} queries, {len(base.clauses)} clauses ({args.set.name}); hybrid")
    print(f"{'variant':12} " + " ".join(f"{f'{scope} {m}':>24}" for scope in ("all", "abbreviation") for m in METRICS))
    for name, (index_side, query_side, dense_side) in VARIANTS.items():
        index = lexical[index_side]
        clause_index.expand_query = partial(expand_query, abbreviations=query_side)
        index._encoder = ExpandedQueries(encoder) if dense_side else encoder
        outcomes = run_modes(queries, local_searcher(index), ["hybrid"], 10)["hybrid"]
        overall, kind = scores(outcomes), scores_by_kind(outcomes).get("abbreviation", {})
        row = [overall[m] for m in METRICS] + [kind.get(m, float("nan")) for m in METRICS]
        print(f"{name:12} " + " ".join(f"{v:24.3f}" for v in row), flush=True)


if __name__ == "__main__":
    main()
