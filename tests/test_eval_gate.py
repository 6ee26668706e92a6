"""The CI gate: hybrid retrieval on the demo corpus plus laws/education must not fall below the floors.

The floors in eval/floors.json were measured with `policyqa eval` on the date and commit recorded
there; raise them when quality improves, never lower them to make a change pass.
"""

from __future__ import annotations

import json

from eval.dataset import load_queries, validate_labels
from eval.harness import evaluate_set
from eval.runner import local_searcher
from tests.conftest import REPO

FLOORS = json.loads((REPO / "eval" / "floors.json").read_text(encoding="utf-8"))


def test_hybrid_retrieval_stays_above_the_recorded_floors(eval_index):
    queries = load_queries(REPO / "eval" / "sets" / FLOORS["set"])
    validate_labels(queries, eval_index.clauses)
    report = evaluate_set(FLOORS["set"], queries, local_searcher(eval_index), ["hybrid"], k=10)
    overall = report.modes[0].overall
    for metric, floor in FLOORS["hybrid"].items():
        assert overall[metric] >= floor, (
            f"hybrid {metric} fell to {overall[metric]:.3f}, below the floor {floor} measured on "
            f"{FLOORS['measured_on']} at {FLOORS['commit']}; worst misses: "
            + "; ".join(f"{f.query} (gold {f.gold_rank})" for f in report.modes[0].failures[:5])
        )
