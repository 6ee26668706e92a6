"""Printing an `EvalReport` for people (rich tables) and writing it for machines (JSON)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from rich.console import Console
from rich.table import Table

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
    _print_no_answer(report.no_answer, console)
    for mode in report.modes:
        _print_failures(mode, console, failures)


def _print_no_answer(n: dict[str, int], console: Console) -> None:
    if n and n["no_answer_queries"]:
        console.print(
            f"answer threshold (the chat's 未找到相关条款): no-answer queries below it "
            f"{n['correctly_below_threshold']}/{n['no_answer_queries']}; answerable queries wrongly below it "
            f"{n['answerable_queries_below_threshold']}/{n['answerable_queries']}"
        )


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
    path.write_text(json.dumps(dataclasses.asdict(report), ensure_ascii=False, indent=2), encoding="utf-8")
