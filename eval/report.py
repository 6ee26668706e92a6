"""Printing an `EvalReport` for people (rich tables) and writing it for machines (JSON)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from rich.console import Console
from rich.table import Table

from eval.answers import VERDICTS, AnswerReport
from eval.harness import EvalReport, ModeReport
from eval.metrics import METRICS


def _fmt(value: float) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def _scores_table(title: str, rows: list[tuple[str, dict]], latency: bool = False) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("")
    for metric in METRICS:
        table.add_column(metric, justify="right")
    if latency:
        table.add_column("p50 ms", justify="right")
        table.add_column("p95 ms", justify="right")
    for name, values in rows:
        times = values.get("latency")
        cells = [_fmt(values[m]) for m in METRICS]
        if latency:
            cells += [f"{times[p]:.1f}" if times else "" for p in ("p50", "p95")]
        table.add_row(name, *cells)
    return table


def print_report(report: EvalReport, console: Console, failures: int = 10) -> None:
    console.print(f"[bold]{report.set_name}[/bold]: {report.queries} queries, k={report.k}")
    rows = [(m.mode, m.overall | {"latency": m.latency_ms}) for m in report.modes]
    # Baseline latency is left out: its query vectors come from the shared encoder's cache.
    rows += [(f"baseline {m.mode}", m.overall) for m in report.baseline]
    console.print(_scores_table("overall (answerable queries)", rows, latency=True))
    for mode in report.modes:
        kinds = [(f"{kind} ({v['queries']})", v) for kind, v in mode.by_kind.items()]
        console.print(_scores_table(f"{mode.mode} by kind", kinds))
    for base, ours in zip(report.baseline, report.modes, strict=False):
        margin = ", ".join(f"{m} {ours.overall[m] - base.overall[m]:+.3f}" for m in ("recall@5", "mrr@10"))
        console.print(f"margin over the baseline ({ours.mode}): {margin}")
    if report.significance:
        console.print("[bold]paired t-test[/bold] (a superscript names the runs this one beats, p < 0.05):")
        console.print(report.significance, markup=False, highlight=False)
    for mode in report.modes:
        _print_failures(mode, console, failures)
    if report.answers:
        print_answers(report.answers, console, failures)


def print_answers(answers: AnswerReport, console: Console, failures: int = 10) -> None:
    table = Table(title="chat answers (quoted text contains a gold phrase)", title_justify="left")
    for column in ("split", "answerable", "correct", "wrong-but-cited", "refused", "unanswerable", "refused ✓"):
        table.add_column(column, justify="right")
    for split, r in answers.by_split.items():
        table.add_row(split, str(r["answerable"]), _pct(r["correct"]), _pct(r["wrong_cited"]),
                      _pct(r["refused_answerable"]), str(r["unanswerable"]), _pct(r["unanswerable_refused"]))
    console.print(table)
    kinds = Table(title="chat answers by kind", title_justify="left")
    for column in ("kind", *VERDICTS):
        kinds.add_column(column, justify="right")
    for kind, counts in answers.by_kind.items():
        kinds.add_row(kind, *(str(counts.get(v, 0)) for v in VERDICTS))
    console.print(kinds)
    if answers.latency_ms:
        console.print(f"chat latency p50 {answers.latency_ms['p50']:.1f} ms, p95 {answers.latency_ms['p95']:.1f} ms")
    wrong = [o for o in answers.outcomes if o.verdict in ("wrong_cited", "refused_answerable")]
    if wrong and failures > 0:
        console.print(f"[bold]{len(wrong)} wrong answers[/bold] (wrong-but-cited first)")
        for o in sorted(wrong, key=lambda o: o.verdict != "wrong_cited")[:failures]:
            quote = " | ".join(o.reply.quotes)[:90] or "未找到"
            console.print(f"  [{o.verdict}] {o.query.id} {o.query.query}  → {quote}  (gold: {' | '.join(o.query.gold)})",
                          markup=False, highlight=False)


def _pct(share: float) -> str:
    return f"{100 * share:.1f}%"


def _print_failures(mode: ModeReport, console: Console, limit: int) -> None:
    if not mode.failures or limit <= 0:
        return
    console.print(f"[bold]{mode.mode}: {len(mode.failures)} queries without a gold clause at rank 1, worst first[/bold]")
    for f in mode.failures[:limit]:
        where = f"rank {f.gold_rank}" if f.gold_rank else "not in the top 100"
        console.print(f"  [{f.kind}] {f.query_id} {f.query}  → gold {where}  (gold: {' | '.join(f.gold)})", markup=False)
        for i, hit in enumerate(f.top, 1):
            console.print(f"      {i}. {hit['id']}  {hit['text'][:70]}", markup=False, highlight=False)


def write_json(report: EvalReport, path: Path) -> None:
    def plain(value):  # labelled queries and other pydantic models inside the dataclasses
        return value.model_dump(exclude_none=True)

    path.write_text(json.dumps(dataclasses.asdict(report), ensure_ascii=False, indent=2, default=plain), encoding="utf-8")
