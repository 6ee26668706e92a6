"""Retrieval metrics through ranx, with qrels built from the phrase rule.

Each gold phrase of a query is one relevant item. A hit whose text contains a phrase not seen
higher up stands for that phrase; any other hit is a non-relevant item at its rank. So Recall@k
is the share of a query's gold phrases found in the top k (re-issues of a clause count once),
and chunkers of any size are judged by the same labels.
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from ranx import Qrels, Run, compare, evaluate

from eval.runner import Outcome

METRICS = ["recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10"]


def qrels_for(outcomes: list[Outcome]) -> Qrels:
    return Qrels({o.query.id: {f"g{i}": 1 for i in range(len(o.query.gold))} for o in outcomes if o.query.gold})


def run_for(outcomes: list[Outcome], name: str) -> Run:
    run: dict[str, dict[str, float]] = {}
    for outcome in outcomes:
        if not outcome.query.gold:
            continue
        items: dict[str, float] = {}
        seen: set[int] = set()
        position = 0
        for rank, found in enumerate(outcome.hit_phrases, 1):
            new = [i for i in found if i not in seen] or [None]
            for phrase in new:  # a hit with two new phrases finds both, one position apart
                position += 1
                items[f"g{phrase}" if phrase is not None else f"x{rank}"] = 1.0 / position
            seen.update(i for i in new if i is not None)
        run[outcome.query.id] = items or {"x0": 0.0}
    return Run(run, name=name)


def scores(outcomes: list[Outcome]) -> dict[str, float]:
    answerable = [o for o in outcomes if o.query.gold]
    if not answerable:
        return {m: float("nan") for m in METRICS}
    return evaluate(qrels_for(answerable), run_for(answerable, "run"), METRICS, make_comparable=True)


def scores_by_kind(outcomes: list[Outcome]) -> dict[str, dict[str, float]]:
    kinds: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        if outcome.query.gold:
            kinds[outcome.query.kind].append(outcome)
    return {kind: scores(group) | {"queries": len(group)} for kind, group in sorted(kinds.items())}


def latency_ms(outcomes: list[Outcome]) -> dict[str, float]:
    times = sorted(o.seconds * 1000 for o in outcomes)
    if len(times) < 2:
        return {"p50": times[0] if times else float("nan"), "p95": times[0] if times else float("nan")}
    return {"p50": statistics.median(times), "p95": statistics.quantiles(times, n=20)[18]}


def significance_table(runs: dict[str, list[Outcome]]) -> str:
    """ranx's comparison of several runs on the same queries (paired t-test, p < 0.05)."""
    first = next(iter(runs.values()))
    answerable = {o.query.id for o in first if o.query.gold}
    qrels = qrels_for([o for o in first if o.query.id in answerable])
    ranx_runs = [run_for([o for o in outs if o.query.id in answerable], name) for name, outs in runs.items()]
    report = compare(qrels, ranx_runs, METRICS, stat_test="student", max_p=0.05, make_comparable=True)
    return str(report)
