"""The one write path: files, uploads and removals, for the CLI and the server alike; and the index it serves.

Replacement rule (both paths): a file that yields documents replaces the documents that came from
the same source (its path; an upload's stored name), and a document with the doc id of a live one
replaces it. A file that yields nothing (unreadable, empty, a duplicate) changes nothing: the
documents it produced before stay, and the file is reported as skipped or duplicate.

Searches read the current index view; a write commits a new version through the backend (backends/:
the local folder or Qdrant), opens it (reusing what has not changed) and only then swaps it in, so searches keep working during a
write and never see half of one. In a server, writes are jobs on one `WriteQueue` (one at a time,
in order, never on a thread a search needs) and segment merges run as jobs of their own after the
write that made them due; the CLI calls the same methods directly and merges at once.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backends.base import Backend, SearchIndex, open_backend
from embedding.encoder import Encoder
from index.pipeline import SearchPipeline
from ingest.pipeline import IngestResult, ingest_files, make_doc_id
from ingest.readers import SUPPORTED_SUFFIXES
from ingest.schema import Document, SkippedFile
from policyqa.settings import Settings
from storage.store import IndexMissingError
from writes.jobs import Job, WriteQueue
from writes.overrides import OVERRIDES_FILE, MetadataChange, Overrides, apply_overrides

WRITE_NICENESS = 19  # the lowest: see at_low_priority
JOBS_JOURNAL = ".jobs.json"


class UnknownDocumentError(KeyError):
    def __init__(self, doc_ids: list[str]) -> None:
        super().__init__(f"no such document: {', '.join(doc_ids)}")
        self.doc_ids = doc_ids

    def __str__(self) -> str:
        return self.args[0]


class DocumentBusyError(RuntimeError):
    def __init__(self, doc_id: str, job_id: str) -> None:
        super().__init__(f"document {doc_id} is being replaced by write job {job_id}; remove it when that job is done")
        self.job_id = job_id


class SourceMissingError(FileNotFoundError):
    def __init__(self, doc_id: str, source: str) -> None:
        super().__init__(f"the file document {doc_id} came from is no longer there ({Path(source).name}); "
                         "upload it again instead")
        self.doc_id = doc_id

    def __str__(self) -> str:
        return self.args[0]


@dataclass
class Upload:
    """One uploaded file: the name the user gave it and its bytes."""

    filename: str
    content: bytes


@dataclass
class WriteReport:
    version: str | None
    result: IngestResult = field(default_factory=IngestResult)
    removed: list[str] = field(default_factory=list)


def at_low_priority(work: Callable[[], Any]) -> Callable[[], Any]:
    """`work`, run on its thread at the lowest CPU priority (Linux: a thread's niceness is its own).

    A write (parsing, embedding and tokenising its clauses, merging segments) otherwise takes CPU and the
    GIL from searches. bench/load.py, 50 users, uploads back to back, 2026-12-03, same run:
    search p95 during writes 1.74x idle at normal priority, 1.30x at nice 19 (a quiet machine); with
    another job on the machine, search throughput during writes -23 % vs unchanged. Writes take ~20 %
    longer. Elsewhere than Linux the write runs as it is.
    """
    def run():
        if sys.platform.startswith("linux"):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WRITE_NICENESS)
        return work()

    return run


def return_freed_memory() -> None:
    """Hand the heap pages a write freed back to the system: glibc keeps them otherwise, and a server's
    RSS grew by a gigabyte over a few writes and stayed there (issue #13). A no-op without glibc."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def stamped(documents: list[Document], previous: dict[str, Document]) -> list[Document]:
    """The documents with the time they entered the index: now, or the earlier time if the same text was there
    (a re-parse or a correction is not a new document to staff)."""
    now = datetime.now(UTC).isoformat(timespec="seconds")

    def added(doc: Document) -> str:
        before = previous.get(doc.doc_id)
        return before.added if before is not None and before.added and before.sha256 == doc.sha256 else now

    return [d.model_copy(update={"added": added(d)}) for d in documents]


def safe_upload_name(filename: str) -> str:
    """The file name an upload is stored under: no folders, no characters unsafe on disk."""
    path = Path(Path(filename.replace("\\", "/")).name)
    return make_doc_id(path.stem) + path.suffix.lower()


def unsupported_type(filename: str) -> SkippedFile | None:
    """The refusal of an uploaded file that cannot be a document by its name alone, or None."""
    suffix = Path(safe_upload_name(filename)).suffix
    if suffix in SUPPORTED_SUFFIXES:
        return None
    return SkippedFile(path=filename, code="unsupported_type",
                       reason=f"unsupported file type '{suffix or '(none)'}'; supported: {', '.join(SUPPORTED_SUFFIXES)}")


class LiveIndex:
    def __init__(self, backend: Backend, encoder: Encoder, upload_dir: Path, overrides: Overrides,
                 with_context: bool = True, max_file_bytes: int | None = None, max_queued_writes: int = 16,
                 background_merges: bool = True, jobs_journal: Path | None = None,
                 pipeline: SearchPipeline | None = None) -> None:
        self.backend = backend
        self.pipeline = pipeline
        self.overrides = overrides
        self.upload_dir = Path(upload_dir)
        self._encoder = encoder
        self._with_context = with_context
        self._max_file_bytes = max_file_bytes
        self._background_merges = background_merges
        self.writes = WriteQueue(max_queued_writes, jobs_journal)
        self._current: SearchIndex | None = None
        # A damaged index raises here: nothing may serve from it or write into it.
        self._exists = backend.exists()
        for stale in self.upload_dir.glob(".staging-*") if self.upload_dir.is_dir() else []:
            shutil.rmtree(stale, ignore_errors=True)  # left by an upload killed before it finished

    @classmethod
    def for_settings(cls, settings: Settings, encoder: Encoder, index_dir: Path | None = None,
                     background_merges: bool = True, server: bool = False,
                     pipeline: SearchPipeline | None = None) -> LiveIndex:
        """The write service over the configured backend (`index_dir` overrides the settings' folder); a
        `server` keeps its jobs in a journal (`<upload_dir>/.jobs.json`) to report them after a restart;
        `pipeline` ranks its searches (without one: fusion alone, as a write needs)."""
        folder = Path(index_dir or settings.index_dir)
        return cls(open_backend(settings, folder), encoder, upload_dir=settings.upload_dir,
                   overrides=Overrides(folder / OVERRIDES_FILE), with_context=settings.embedding_context,
                   max_file_bytes=settings.max_file_bytes, max_queued_writes=settings.max_queued_writes,
                   background_merges=background_merges,
                   jobs_journal=settings.upload_dir / JOBS_JOURNAL if server else None, pipeline=pipeline)

    def warm_up(self) -> None:
        """Open the index and search once before serving: it loads jieba's dictionary and runs the model once,
        which the first concurrent searches would otherwise each do for themselves (seconds each, under load)."""
        if self._exists:
            self.index.search("义务教育", k=1)

    @property
    def index(self) -> SearchIndex:
        current = self._current
        if current is None:
            if not self._exists:
                raise IndexMissingError(self.backend.where)
            current = self._current = self.backend.open(self._encoder, pipeline=self.pipeline)
        return current

    def _reopen(self) -> None:
        self._current = self.backend.open(self._encoder, self._current, self.pipeline)
        self._exists = True

    def _commit(self, on_embedded: Callable[[int, int], None] | None = None, **changes) -> str:
        embedded = 0

        def report(chars: int, total: int) -> None:
            nonlocal embedded
            embedded += chars
            self.writes.progress("embedding" if embedded < total else "committing", embedded, total)
            if on_embedded:
                on_embedded(chars, total)

        self.writes.progress("embedding" if changes.get("add_clauses") else "committing")
        version = self.backend.write(self._encoder, with_context=self._with_context, on_embedded=report,
                                     merge=not self._background_merges, **changes)
        self._reopen()
        return_freed_memory()
        if self._background_merges and not any(j.kind == "merge" and j.state == "queued" for j in self.writes.jobs()):
            self.writes.submit("merge", [], at_low_priority(self.merge), limited=False)
        return version

    def merge(self) -> str | None:
        """Merge what is due (the local backend's segments); the new version is served once committed."""
        version = self.backend.merge()
        if version is not None:
            self._reopen()
            return_freed_memory()
        return version

    def submit_uploads(self, uploads: list[Upload], then: Callable[[WriteReport], Any] = lambda r: r) -> Job:
        """Queue an upload; the job's result is `then(report)`."""
        return self.writes.submit("upload", [u.filename for u in uploads],
                                  at_low_priority(lambda: then(self.add_uploads(uploads))))

    def submit_removal(self, doc_ids: list[str], then: Callable[[WriteReport], Any] = lambda r: r) -> Job:
        """Queue a removal; unknown documents, and documents a waiting or running write is about to replace,
        are refused at once."""
        self._refuse_unknown(doc_ids)
        self._refuse_busy(doc_ids)
        return self.writes.submit("remove", list(doc_ids), at_low_priority(lambda: then(self.remove(doc_ids))))

    def _refuse_busy(self, doc_ids: list[str]) -> None:
        """A removal would race a write that replaces the same document: the user could not tell which won."""
        for job in self.writes.jobs():
            if job.state not in ("queued", "running"):
                continue
            for doc_id in doc_ids:
                source = self.index.documents[doc_id].source_path
                replaced = (doc_id in job.subject if job.kind in ("metadata", "reparse") else
                            job.kind == "upload" and any(str(self.upload_dir / safe_upload_name(n)) == source
                                                         for n in job.subject))
                if replaced:
                    raise DocumentBusyError(doc_id, job.id)

    def _refuse_unknown(self, doc_ids: list[str]) -> None:
        unknown = [d for d in doc_ids if not self._exists or d not in self.index.documents]
        if unknown:
            raise UnknownDocumentError(unknown)

    def add_files(self, paths: list[Path], on_file: Callable[[Path], None] | None = None,
                  on_embedded: Callable[[int, int], None] | None = None) -> WriteReport:
        """Parse files where they lie (their path is their source) and add their documents."""
        return self._add(paths, {str(p): str(p) for p in paths}, on_file, on_embedded)

    def add_uploads(self, uploads: list[Upload]) -> WriteReport:
        """Parse uploaded files and add their documents; a re-upload of a file name replaces it.

        The files are parsed from a staging folder and moved into the upload folder only after
        the new index version is committed: a failure anywhere leaves index and folder as they were.
        """
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.upload_dir))
        try:
            staged: dict[str, str] = {}  # staging path -> final path
            skipped: list[SkippedFile] = []
            for upload in uploads:
                name = safe_upload_name(upload.filename)
                if refusal := unsupported_type(upload.filename):
                    skipped.append(refusal)
                    continue
                path = staging / name
                path.write_bytes(upload.content)
                staged[str(path)] = str(self.upload_dir / name)
            report = self._add([Path(p) for p in staged], staged)
            report.result.files = len(uploads)
            report.result.skipped[:0] = skipped
            for item in report.result.skipped + report.result.duplicates:
                item.path = Path(staged.get(item.path, item.path)).name
            if report.version is not None:
                for source in {d.source_path for d in report.result.documents}:
                    Path(next(s for s, f in staged.items() if f == source)).replace(source)
            return report
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _add(self, files: list[Path], source_of: dict[str, str], on_file=None, on_embedded=None) -> WriteReport:
        """Parse `files`, record each document under `source_of[path]`, and commit (the replacement rule above)."""
        existing = self.backend.document_keys()
        sources = set(source_of.values())
        kept = [d for d in existing if d.source_path not in sources]
        kwargs = {} if self._max_file_bytes is None else {"max_bytes": self._max_file_bytes}
        parsed = 0

        def report(path: Path) -> None:
            nonlocal parsed
            parsed += 1
            self.writes.progress("parsing", parsed, len(files))
            if on_file:
                on_file(path)

        self.writes.progress("parsing", 0, len(files))
        result = ingest_files(files, known_hashes={d.sha256: d.doc_id for d in kept}, on_file=report, **kwargs)
        result.documents = [d.model_copy(update={"source_path": source_of[d.source_path]}) for d in result.documents]
        result.documents, result.clauses = apply_overrides(result.documents, result.clauses, self.overrides.load())
        result.documents = stamped(result.documents, self.index.documents if self._exists else {})
        if not result.documents:
            return WriteReport(version=None, result=result)
        version = self._commit(add_documents=result.documents, add_clauses=result.clauses,
                               replace_sources={d.source_path for d in result.documents}, on_embedded=on_embedded)
        return WriteReport(version=version, result=result)

    def submit_metadata(self, doc_id: str, change: MetadataChange, then: Callable[[WriteReport], Any] = lambda r: r) -> Job:
        """Queue a metadata correction; an unknown document is refused at once."""
        self._refuse_unknown([doc_id])
        return self.writes.submit("metadata", [doc_id], at_low_priority(lambda: then(self.set_metadata(doc_id, change))))

    def set_metadata(self, doc_id: str, change: MetadataChange) -> WriteReport:
        """Correct a document's metadata: it is written again with the correction (a new title re-embeds its
        clauses, whose context the title is), and the correction is kept for later re-ingests of its file."""
        self._refuse_unknown([doc_id])
        fields = self.overrides.merged(doc_id, change)
        index = self.index
        documents, clauses = apply_overrides([index.documents[doc_id]], index.document_clauses(doc_id), {doc_id: fields})
        version = self._commit(add_documents=documents, add_clauses=clauses)
        self.overrides.save(doc_id, fields)
        return WriteReport(version=version, result=IngestResult(files=0, documents=documents, clauses=clauses))

    def submit_reparse(self, doc_id: str, then: Callable[[WriteReport], Any] = lambda r: r) -> Job:
        self._refuse_unknown([doc_id])
        return self.writes.submit("reparse", [doc_id], at_low_priority(lambda: then(self.reparse(doc_id))))

    def reparse(self, doc_id: str) -> WriteReport:
        """Parse a document's file again (after a parser upgrade): the file's documents are replaced."""
        self._refuse_unknown([doc_id])
        source = self.index.documents[doc_id].source_path
        if not Path(source).is_file():
            raise SourceMissingError(doc_id, source)
        return self._add([Path(source)], {source: source})

    def remove(self, doc_ids: list[str]) -> WriteReport:
        """Remove documents, and the uploaded files they came from once no document needs them."""
        self._refuse_unknown(doc_ids)
        sources = {self.index.documents[d].source_path for d in doc_ids}
        version = self._commit(add_documents=[], add_clauses=[], remove_doc_ids=set(doc_ids))
        still_used = {d.source_path for d in self.index.documents.values()}
        for source in sources - still_used:
            path = Path(source)
            if path.parent.resolve() == self.upload_dir.resolve():
                path.unlink(missing_ok=True)
        return WriteReport(version=version, removed=list(doc_ids))
