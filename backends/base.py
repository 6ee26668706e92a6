"""What the write service, the API, the CLI and eval need of wherever the index lives.

Two backends implement it: `local` (backends/local.py: FAISS + BM25 segments in a folder, storage/ and
index/) and `qdrant` (backends/qdrant_store.py, backends/qdrant_index.py: a Qdrant server or cluster, or
Qdrant's embedded local mode). Which one is a setting (`POLICYQA_BACKEND`); nothing above this
interface knows which it talks to. docs/architecture.md says what each call promises.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sized
from pathlib import Path
from typing import Protocol

from embedding.encoder import Encoder
from index.pipeline import SearchPipeline
from index.types import DocumentInfo, Filters, Hit, Mode
from ingest.schema import Clause, Document
from policyqa.settings import Settings
from storage.segment import DocumentKey


class BackendError(RuntimeError):
    """The backend cannot be used as configured (unreachable, locked, built with another model)."""


class ClauseCollection(Sized, Iterable[Clause], Protocol):
    """The live clauses: counted, and read in order (eval checks its labels against them)."""


class SearchIndex(Protocol):
    """One consistent view of the index: what searches, chat and the document API read."""

    documents: dict[str, Document]
    manifest: dict
    clauses: ClauseCollection
    pipeline: SearchPipeline  # how searches rank; its reranker also picks the chat's sentences

    def search(self, query: str, k: int = 10, mode: Mode = "hybrid", filters: Filters | None = None,
               rerank: bool = True) -> list[Hit]: ...

    def get_clause(self, clause_id: str) -> Clause | None: ...

    def document_clauses(self, doc_id: str) -> list[Clause]: ...

    def clause_count(self, doc_id: str) -> int: ...

    def neighbours(self, clause_id: str, before: int = 1, after: int = 1) -> tuple[list[Clause], list[Clause]]: ...

    def document_info(self, doc_id: str) -> DocumentInfo: ...


class Backend(Protocol):
    """Where the index lives. Writes are called one at a time (the write service serialises them)."""

    where: str  # for messages: a folder, or a Qdrant URL/folder and collection

    def exists(self) -> bool:
        """Whether an index is there (a damaged one raises: it is never taken for none)."""

    def is_empty(self) -> bool:
        """Nothing there at all: the demo corpus may be ingested into it."""

    def version(self) -> str | None:
        """The live version's name, cheap to ask (server processes poll it to see each other's commits);
        None: no index yet."""

    def open(self, encoder: Encoder, previous: SearchIndex | None = None,
             pipeline: SearchPipeline | None = None) -> SearchIndex:
        """The live index; `previous` (an older view) lends what has not changed since; `pipeline` ranks its
        searches (without one: fusion alone, no reranker)."""

    def document_keys(self) -> list[DocumentKey]:
        """Id, source and hash of every live document (what the replacement rule needs)."""

    def write(self, encoder: Encoder, add_documents: list[Document], add_clauses: list[Clause],
              replace_sources: set[str] = frozenset(), remove_doc_ids: set[str] = frozenset(), with_context: bool = True,
              on_embedded: Callable[[int, int], None] | None = None, merge: bool = True) -> str:
        """Commit the live documents minus the removed and replaced ones plus the new ones, all or nothing;
        returns the new version's name."""

    def merge(self) -> str | None:
        """Compact what writes left behind, if due; the new version's name, or None."""


def open_backend(settings: Settings, index_dir: Path | None = None) -> Backend:
    """The configured backend; `index_dir` overrides the local folder (for Qdrant: where encoded clauses are
    checkpointed until they are written)."""
    folder = Path(index_dir or settings.index_dir)
    if settings.backend == "qdrant":
        from backends.qdrant_store import QdrantBackend

        return QdrantBackend.from_settings(settings, folder)
    from backends.local import LocalBackend

    return LocalBackend(folder)
