"""Files in, documents and clauses out: the one entry point the CLI and the API call."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ingest.clauses import MAX_CLAUSE_CHARS, build_clauses
from ingest.cleaning import clean_text
from ingest.documents import DraftDocument, NoDocumentTextError, has_document_text, split_documents
from ingest.errors import EmptyDocumentError, IngestError, TooManyClausesError
from ingest.metadata import extract_metadata, is_metadata_line
from ingest.normalize import compact
from ingest.readers import DEFAULT_MAX_BYTES, SUPPORTED_SUFFIXES, read_text
from ingest.schema import Clause, Document, ParsedFile, SkippedFile

_UNSAFE_ID_CHARS = re.compile(r"[^\w\-.\u4e00-\u9fff]+")
# The most clauses one file may make: the largest real document (laws, seeds, messy pages) makes 527,
# a 3 MB one-line text made 6,037 (issue #11) and took minutes to parse and embed.
MAX_CLAUSES_PER_FILE = 5_000


def make_doc_id(stem: str) -> str:
    """A readable, URL-safe id from a file name (`#` separates doc and clause in clause ids)."""
    return _UNSAFE_ID_CHARS.sub("_", stem).strip("_") or "document"


def _split_metadata_lines(draft: DraftDocument) -> tuple[list[str], str]:
    """(body paragraphs, header lines) for a drafted document."""
    body = [p for p in draft.paragraphs if not is_metadata_line(p)]
    header_lines = draft.header + [p for p in draft.paragraphs if is_metadata_line(p)]
    return body, "\n".join(header_lines)


def _strip_title_prefix(body: list[str], title: str) -> list[str]:
    """Pages that glue the title onto the first sentence (`…行动计划方案大力促进…`)."""
    if body and title and body[0].startswith(title) and len(body[0]) > len(title):
        return [body[0][len(title) :].lstrip("：:，, ")] + body[1:]
    return body


def parse_text(
    text: str, source_path: str, doc_id: str, cap: int = MAX_CLAUSE_CHARS, max_clauses: int = MAX_CLAUSES_PER_FILE
) -> ParsedFile:
    """Clean, split into documents, extract metadata and build clauses for one file's text."""
    drafts = split_documents(clean_text(text), fallback_title=Path(source_path).stem)
    documents: list[Document] = []
    clauses: list[Clause] = []
    has_text = False
    for index, draft in enumerate(drafts):
        this_id = doc_id if index == 0 else f"{doc_id}-{index + 1}"
        body, header = _split_metadata_lines(draft)
        body = _strip_title_prefix(body, draft.title)
        if not body:
            continue
        has_text = has_text or has_document_text(body)
        doc_text = "\n".join(body)
        meta = extract_metadata(draft.title, header, doc_text)
        documents.append(
            Document(
                doc_id=this_id,
                title=draft.title,
                source_path=source_path,
                issuer=meta.issuer,
                doc_number=meta.doc_number,
                date=meta.date,
                region=meta.region,
                forwarded_by=meta.forwarded_by,
                sha256=hashlib.sha256(compact(doc_text).encode()).hexdigest(),
                chars=len(doc_text),
                text=doc_text,
            )
        )
        # One past the cap is enough to know the file is over it: stop building there.
        clauses.extend(build_clauses(this_id, draft.title, body, cap, limit=max_clauses + 1 - len(clauses)))
        if len(clauses) > max_clauses:
            raise TooManyClausesError(source_path, max_clauses)
    if not clauses:
        raise EmptyDocumentError(source_path)
    if not has_text:
        raise NoDocumentTextError(source_path)
    return ParsedFile(source_path=source_path, documents=documents, clauses=clauses)


def parse_file(path: Path, cap: int = MAX_CLAUSE_CHARS, max_bytes: int = DEFAULT_MAX_BYTES) -> ParsedFile:
    return parse_text(read_text(path, max_bytes=max_bytes), str(path), make_doc_id(path.stem), cap)


def find_files(paths: Iterable[Path]) -> Iterator[Path]:
    """The supported files under each path (files as given, folders recursively, sorted)."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES)
        else:
            yield path


@dataclass
class IngestResult:
    documents: list[Document] = field(default_factory=list)
    clauses: list[Clause] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    duplicates: list[SkippedFile] = field(default_factory=list)
    files: int = 0


def ingest_files(
    files: list[Path],
    known_hashes: dict[str, str] | None = None,
    on_file: Callable[[Path], None] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> IngestResult:
    """Parse every file; a file that fails is reported and the rest still ingest.

    `known_hashes` maps the text hash of documents already in the index to their ids, so a
    duplicate of an indexed document (same text, another file) is not ingested twice.
    """
    seen = dict(known_hashes or {})
    used_ids = set(seen.values())
    result = IngestResult(files=len(files))
    for path in files:
        try:
            parsed = parse_file(path, max_bytes=max_bytes)
        except IngestError as exc:
            result.skipped.append(SkippedFile(path=str(path), code=exc.code, reason=getattr(exc, "reason", str(exc))))
        except OSError as exc:
            result.skipped.append(SkippedFile(path=str(path), code="cannot_open", reason=f"cannot open: {exc.strerror or exc}"))
        else:
            _add_parsed(parsed, result, seen, used_ids)
        if on_file:
            on_file(path)
    return result


def _add_parsed(parsed: ParsedFile, result: IngestResult, seen: dict[str, str], used_ids: set[str]) -> None:
    for doc in parsed.documents:
        if doc.sha256 in seen:
            result.duplicates.append(
                SkippedFile(path=parsed.source_path, code="duplicate", duplicate_of=seen[doc.sha256],
                            reason=f"duplicate of {seen[doc.sha256]} ({doc.title})")
            )
            continue
        new_id = doc.doc_id
        if new_id in used_ids:  # same file name in another folder
            new_id = f"{doc.doc_id}-{hashlib.sha1(parsed.source_path.encode()).hexdigest()[:6]}"
        seen[doc.sha256] = new_id
        used_ids.add(new_id)
        clauses = [c for c in parsed.clauses if c.doc_id == doc.doc_id]
        if new_id != doc.doc_id:
            doc = doc.model_copy(update={"doc_id": new_id})
            clauses = [
                c.model_copy(update={"doc_id": new_id, "id": new_id + c.id[len(c.doc_id) :]}) for c in clauses
            ]
        result.documents.append(doc)
        result.clauses.extend(clauses)
