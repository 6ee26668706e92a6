"""Evaluating a labelled set: every mode, per kind, latency, answer quality, failures, baseline.

`evaluate_set` is what `policyqa eval` and the CI gate call; it returns plain data (an
`EvalReport`) that the CLI prints and `--json` writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from eval.answers import AnswerReport, Chat, evaluate_answers
from eval.dataset import LabelledQuery
from eval.metrics import latency_ms, scores, scores_by_kind, significance_table
from eval.runner import Outcome, Searcher, run_query

FAILURE_DEPTH = 100  # how deep a missed query is searched again to say where its gold clause ranked


@dataclass
class Failure:
    query_id: str
    query: str
    kind: str
    gold: list[str]
    gold_rank: int | None  # rank of the first relevant hit within FAILURE_DEPTH (None: not found)
    top: list[dict]


@dataclass
class ModeReport:
    mode: str
    overall: dict[str, float]
    by_kind: dict[str, dict[str, float]]
    latency_ms: dict[str, float]
    failures: list[Failure] = field(default_factory=list)


@dataclass
class EvalReport:
    set_name: str
    queries: int
    k: int
    modes: list[ModeReport]
    significance: str = ""
    baseline: list[ModeReport] = field(default_factory=list)
    # The chat's answer to every query (mode-independent: the chat searches in hybrid).
    answers: AnswerReport | None = None


def _failures(outcomes: list[Outcome], search: Searcher, k: int) -> list[Failure]:
    """Every answerable query whose first relevant hit is not at rank 1, worst first."""
    failures = []
    for outcome in outcomes:
        if not outcome.query.gold or outcome.first_relevant_rank == 1:
            continue
        rank = outcome.first_relevant_rank
        if rank is None:
            rank = run_query(outcome.query, search, outcome.mode, FAILURE_DEPTH).first_relevant_rank
        failures.append(
            Failure(
                query_id=outcome.query.id,
                query=outcome.query.query,
                kind=outcome.query.kind,
                gold=outcome.query.gold,
                gold_rank=rank,
                top=[{"id": h.item_id, "text": " ".join(h.text.split())[:120]} for h in outcome.hits[:3]],
            )
        )
    return sorted(failures, key=lambda f: -(f.gold_rank or FAILURE_DEPTH + 1))


def _mode_report(outcomes: list[Outcome], search: Searcher, k: int) -> ModeReport:
    return ModeReport(
        mode=outcomes[0].mode if outcomes else "",
        overall=scores(outcomes),
        by_kind=scores_by_kind(outcomes),
        latency_ms=latency_ms(outcomes),
        failures=_failures(outcomes, search, k),
    )


def run_modes(queries: list[LabelledQuery], search: Searcher, modes: list[str], k: int) -> dict[str, list[Outcome]]:
    for mode in modes:  # warm up (lazy loads, first-call costs) so latency is that of a running service
        search("预热", k, mode)
    return {mode: [run_query(q, search, mode, k) for q in queries] for mode in modes}


def evaluate_set(
    set_name: str,
    queries: list[LabelledQuery],
    search: Searcher,
    modes: list[str],
    k: int = 10,
    chat: Chat | None = None,
    baseline: Searcher | None = None,
) -> EvalReport:
    outcomes = run_modes(queries, search, modes, k)
    report = EvalReport(
        set_name=set_name,
        queries=len(queries),
        k=k,
        modes=[_mode_report(outs, search, k) for outs in outcomes.values()],
        answers=evaluate_answers(set_name, queries, chat) if chat else None,
    )
    runs = dict(outcomes)
    if baseline is not None:
        base = run_modes(queries, baseline, modes, k)
        report.baseline = [_mode_report(outs, baseline, k) for outs in base.values()]
        runs |= {f"baseline-{mode}": outs for mode, outs in base.items()}
    if len(runs) > 1:
        report.significance = significance_table(runs)
    return report
