"""The one write path: files, uploads and removals, for the CLI and the server alike; and the index it serves.

Replacement rule (both paths): a file that yields documents replaces the documents that came from
the same source (its path; an upload's stored name), and a document with the doc id of a live one
replaces it. A file that yields nothing (unreadable, empty, a duplicate) changes nothing: the
documents it produced before stay, and the file is reported as skipped or duplicate.

Searches read the current index view; a write commits a new version through the backend (backends/:
the local folder or Qdrant), opens it (reusing what has not changed) and only then swaps it in, so searches keep
working during a write and never see half of one. Other processes serving the same index see the new version
through `watch_versions`. In a server, writes are jobs in a `JobStore` on disk (writes/job_store.py: one writer
at a time across processes, in order, on a thread no search needs) and segment merges run as jobs of their own
after the write that made them due; the CLI calls the same methods directly and merges at once.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from backends.base import Backend, SearchIndex, open_backend
from embedding.encoder import Encoder
from index.pipeline import SearchPipeline
from ingest.pipeline import IngestResult, ingest_files, make_doc_id
from ingest.readers import SUPPORTED_SUFFIXES
from ingest.schema import Document, SkippedFile
from policyqa.settings import Settings
from storage.store import IndexMissingError
from writes.job_store import Job, JobStore
from writes.overrides import OVERRIDES_FILE, MetadataChange, Overrides, apply_overrides

WRITE_NICENESS = 19  # the lowest: see lower_write_priority
JOBS_FOLDER = ".jobs"
log = logging.getLogger(__name__)


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


def lower_write_priority(niceness: int = WRITE_NICENESS) -> None:
    """Run the calling thread at a low CPU priority, the lowest by default (Linux: a thread's niceness is its own).

    A write (parsing, embedding and tokenising its clauses, merging segments) otherwise takes CPU and the
    GIL from searches. bench/load.py, 50 users, uploads back to back, 2026-12-03, same run:
    search p95 during writes 1.74x idle at normal priority, 1.30x at nice 19 (a quiet machine); with
    another job on the machine, search throughput during writes -23 % vs unchanged. Writes take ~20 %
    longer. Elsewhere than Linux the write runs as it is.
    """
    if sys.platform.startswith("linux"):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)


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
                 with_context: bool = True, max_file_bytes: int | None = None, background_merges: bool = True,
                 jobs: JobStore | None = None, pipeline: SearchPipeline | None = None) -> None:
        self.backend = backend
        self.pipeline = pipeline
        self.overrides = overrides
        self.upload_dir = Path(upload_dir)
        self.jobs = jobs  # a server's write jobs; None: writes are called directly (the CLI)
        # How far the write under way is (stage, done, total): set by whoever runs the writes.
        self.progress: Callable[..., None] = lambda stage, done=None, total=None: None
        self._encoder = encoder
        self._with_context = with_context
        self._max_file_bytes = max_file_bytes
        self._background_merges = background_merges
        self._current: SearchIndex | None = None
        self._version: str | None = None  # the backend's version the current view was opened at (or after)
        self._reopening = threading.Lock()
        # A damaged index raises here: nothing may serve from it or write into it.
        self._exists = backend.exists()
        for stale in self.upload_dir.glob(".staging-*") if self.upload_dir.is_dir() else []:
            shutil.rmtree(stale, ignore_errors=True)  # left by an upload killed before it finished

    @classmethod
    def for_settings(cls, settings: Settings, encoder: Encoder, index_dir: Path | None = None,
                     background_merges: bool = True, server: bool = False,
                     pipeline: SearchPipeline | None = None) -> LiveIndex:
        """The write service over the configured backend (`index_dir` overrides the settings' folder); a
        `server` keeps its write jobs on disk (`<upload_dir>/.jobs/`), shared by its processes and kept over
        restarts; `pipeline` ranks its searches (without one: fusion alone, as a write needs)."""
        folder = Path(index_dir or settings.index_dir)
        jobs = JobStore(settings.upload_dir / JOBS_FOLDER, settings.max_queued_writes) if server else None
        return cls(open_backend(settings, folder), encoder, upload_dir=settings.upload_dir,
                   overrides=Overrides(folder / OVERRIDES_FILE), with_context=settings.embedding_context,
                   max_file_bytes=settings.max_file_bytes, background_merges=background_merges, jobs=jobs,
                   pipeline=pipeline)

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
            self._reopen()
            current = self._current
        return current

    @property
    def encoder(self) -> Encoder:
        return self._encoder

    @property
    def version(self) -> str | None:
        """The backend version the served view was opened at (None before the first open)."""
        return self._version

    def _reopen(self) -> None:
        """Open the backend's live version (reusing what has not changed) and serve it from now on."""
        with self._reopening:
            version = self.backend.version()  # read first: a commit meanwhile is seen by the next check
            self._current = self.backend.open(self._encoder, self._current, self.pipeline)
            self._version, self._exists = version, True

    def watch_versions(self, interval_seconds: float = 0.25) -> threading.Event:
        """Serve versions other processes commit (another server process's writer, `policyqa ingest`): the
        backend's version is checked every `interval_seconds` on a thread of its own, and a new one is opened
        there and swapped in; searches keep reading the view they have. Set the returned event to stop."""
        stop = threading.Event()

        def watch() -> None:
            unopenable = None  # a version that failed to open is not tried again (nor logged) until another comes
            while not stop.wait(interval_seconds):
                version = None
                try:
                    version = self.backend.version()
                    if version not in (None, self._version, unopenable):
                        self._reopen()
                except Exception:  # a damaged or unreachable index: keep serving the last good view
                    unopenable = version
                    log.warning("could not open the index's version %s; still serving %s", version, self._version,
                                exc_info=True)

        threading.Thread(target=watch, name="policyqa-versions", daemon=True).start()
        return stop

    def _commit(self, on_embedded: Callable[[int, int], None] | None = None, **changes) -> str:
        embedded = 0

        def report(chars: int, total: int) -> None:
            nonlocal embedded
            embedded += chars
            self.progress("embedding" if embedded < total else "committing", embedded, total)
            if on_embedded:
                on_embedded(chars, total)

        self.progress("embedding" if changes.get("add_clauses") else "committing")
        version = self.backend.write(self._encoder, with_context=self._with_context, on_embedded=report,
                                     merge=not self._background_merges, **changes)
        self._reopen()
        return_freed_memory()
        if self._background_merges and self.jobs is not None and not any(
                j.kind == "merge" and j.state == "queued" for j in self.jobs.jobs()):
            self.jobs.submit("merge", [], limited=False)
        return version

    def merge(self) -> str | None:
        """Merge what is due (the local backend's segments); the new version is served once committed."""
        version = self.backend.merge()
        if version is not None:
            self._reopen()
            return_freed_memory()
        return version

    def _submit(self, kind: str, subject: list[str], **kwargs) -> Job:
        if self.jobs is None:
            raise RuntimeError("this LiveIndex has no job store: call its write methods directly")
        return self.jobs.submit(kind, subject, **kwargs)

    def submit_uploads(self, uploads: list[Upload]) -> Job:
        """Queue an upload: its files are staged with the job (a restart runs it from them)."""
        files = {safe_upload_name(u.filename): u.content for u in uploads if not unsupported_type(u.filename)}
        return self._submit("upload", [u.filename for u in uploads], files=list(files.items()))

    def submit_removal(self, doc_ids: list[str]) -> Job:
        """Queue a removal; unknown documents, and documents a waiting or running write is about to replace,
        are refused at once."""
        self._refuse_unknown(doc_ids)
        self._refuse_busy(doc_ids)
        return self._submit("remove", list(doc_ids))

    def submit_metadata(self, doc_id: str, change: MetadataChange) -> Job:
        """Queue a metadata correction; an unknown document is refused at once."""
        self._refuse_unknown([doc_id])
        return self._submit("metadata", [doc_id], params={"change": change.model_dump(exclude_unset=True)})

    def submit_reparse(self, doc_id: str) -> Job:
        self._refuse_unknown([doc_id])
        return self._submit("reparse", [doc_id])

    def _refuse_busy(self, doc_ids: list[str]) -> None:
        """A removal would race a write that replaces the same document: the user could not tell which won."""
        for job in self.jobs.jobs() if self.jobs is not None else []:
            if job.is_finished:
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
        """Parse uploaded files and add their documents (`add_staged`, from a staging folder of their own)."""
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.upload_dir))
        try:
            for upload in uploads:
                if not unsupported_type(upload.filename):
                    (staging / safe_upload_name(upload.filename)).write_bytes(upload.content)
            return self.add_staged(staging, [u.filename for u in uploads])
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def add_staged(self, folder: Path, filenames: list[str]) -> WriteReport:
        """Add the uploads `filenames`, staged in `folder` under their safe names; a re-upload of a file name
        replaces it.

        The files are parsed where they are staged and copied into the upload folder only after the new
        index version is committed: a failure anywhere leaves index and folder as they were. Running it again
        (a job cut short) adds nothing twice: the documents replace those of the same uploaded files.
        """
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        staged: dict[str, str] = {}  # staged path -> final path
        skipped: list[SkippedFile] = []
        for filename in filenames:
            if refusal := unsupported_type(filename):
                skipped.append(refusal)
                continue
            name = safe_upload_name(filename)
            staged[str(folder / name)] = str(self.upload_dir / name)
        report = self._add([Path(p) for p in staged], staged)
        report.result.files = len(filenames)
        report.result.skipped[:0] = skipped
        for item in report.result.skipped + report.result.duplicates:
            item.path = Path(staged.get(item.path, item.path)).name
        if report.version is not None:
            for source in {d.source_path for d in report.result.documents}:
                partial = Path(source).with_name(f".{Path(source).name}.{os.getpid()}.partial")
                shutil.copyfile(next(s for s, f in staged.items() if f == source), partial)
                os.replace(partial, source)
        return report

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
            self.progress("parsing", parsed, len(files))
            if on_file:
                on_file(path)

        self.progress("parsing", 0, len(files))
        result = ingest_files(files, known_hashes={d.sha256: d.doc_id for d in kept}, on_file=report, **kwargs)
        result.documents = [d.model_copy(update={"source_path": source_of[d.source_path]}) for d in result.documents]
        result.documents, result.clauses = apply_overrides(result.documents, result.clauses, self.overrides.load())
        result.documents = stamped(result.documents, self.index.documents if self._exists else {})
        if not result.documents:
            return WriteReport(version=None, result=result)
        version = self._commit(add_documents=result.documents, add_clauses=result.clauses,
                               replace_sources={d.source_path for d in result.documents}, on_embedded=on_embedded)
        return WriteReport(version=version, result=result)

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

    def reparse(self, doc_id: str) -> WriteReport:
        """Parse a document's file again (after a parser upgrade): the file's documents are replaced."""
        self._refuse_unknown([doc_id])
        source = self.index.documents[doc_id].source_path
        if not Path(source).is_file():
            raise SourceMissingError(doc_id, source)
        return self._add([Path(source)], {source: source})

    def remove(self, doc_ids: list[str], missing_ok: bool = False) -> WriteReport:
        """Remove documents, and the uploaded files they came from once no document needs them. `missing_ok`:
        documents already gone are not an error (a removal cut short and run again)."""
        if missing_ok:
            doc_ids = [d for d in doc_ids if self._exists and d in self.index.documents]
        self._refuse_unknown(doc_ids)
        sources = {self.index.documents[d].source_path for d in doc_ids}
        version = self._commit(add_documents=[], add_clauses=[], remove_doc_ids=set(doc_ids))
        still_used = {d.source_path for d in self.index.documents.values()}
        for source in sources - still_used:
            path = Path(source)
            if path.parent.resolve() == self.upload_dir.resolve():
                path.unlink(missing_ok=True)
        return WriteReport(version=version, removed=list(doc_ids))
