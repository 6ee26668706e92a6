"""The `policyqa` command: a thin shell over ingest and index."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from index.store import IndexStore
from ingest.errors import IngestError
from ingest.pipeline import find_files, ingest_files, parse_file
from policyqa.settings import get_settings

app = typer.Typer(help="Search Chinese education-policy documents clause by clause.", no_args_is_help=True)
err = Console(stderr=True)

IndexDirOption = Annotated[
    Path | None, typer.Option("--index-dir", help="index directory (default: $POLICYQA_INDEX_DIR or data/index)")
]


@app.command()
def parse(files: Annotated[list[Path], typer.Argument(help="files to parse", exists=False)]) -> None:
    """Print the clauses of FILES as JSON Lines (one clause per line)."""
    failed = 0
    for path in find_files(files):
        try:
            parsed = parse_file(path)
        except (IngestError, OSError) as exc:
            err.print(f"[red]skipped[/red] {exc}")
            failed += 1
            continue
        for clause in parsed.clauses:
            sys.stdout.write(clause.model_dump_json() + "\n")
    raise typer.Exit(1 if failed else 0)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="files or folders (searched recursively)")],
    index_dir: IndexDirOption = None,
) -> None:
    """Parse files into clauses and add them to the index (new and changed files replace old ones)."""
    store = IndexStore(index_dir or get_settings().index_dir)
    files = list(find_files(paths))
    if not files:
        err.print(f"[red]no supported files found in {', '.join(map(str, paths))}[/red]")
        raise typer.Exit(1)
    existing = store.load() if store.exists() else None
    sources = {str(p) for p in files}
    kept_docs = [d for d in existing.documents if d.source_path not in sources] if existing else []
    kept_ids = {d.doc_id for d in kept_docs}
    kept_clauses = [c for c in existing.clauses if c.doc_id in kept_ids] if existing else []

    with Progress(
        TextColumn("[bold]ingest"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.description}"),
        console=err,
        disable=len(files) < 20,
    ) as progress:
        task = progress.add_task("", total=len(files))
        result = ingest_files(
            files,
            known_hashes={d.sha256: d.doc_id for d in kept_docs},
            on_file=lambda p: progress.update(task, advance=1, description=p.name[:40]),
        )
    version = store.commit(kept_docs + result.documents, kept_clauses + result.clauses)
    _print_summary(result, store.index_dir, version)


def _print_summary(result, index_dir: Path, version: str) -> None:
    err.print(f"[bold]ingest summary[/bold]: index {index_dir}, version {version}")
    table = Table(show_header=False)
    table.add_row("files", str(result.files))
    table.add_row("documents added", str(len(result.documents)))
    table.add_row("clauses added", str(len(result.clauses)))
    table.add_row("duplicates skipped", str(len(result.duplicates)))
    table.add_row("files skipped", str(len(result.skipped)))
    err.print(table)
    for item in result.duplicates:
        err.print(f"[yellow]duplicate[/yellow] {item.path}: {item.reason}")
    for item in result.skipped:
        err.print(f"[red]skipped[/red] {item.path}: {item.reason}")


def main() -> None:
    app()
