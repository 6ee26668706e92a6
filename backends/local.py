"""The local backend: versions of FAISS + BM25 segments in one folder (storage/, index/, writes/commit.py)."""

from __future__ import annotations

from pathlib import Path

from embedding.encoder import Encoder
from index.clause_index import ClauseIndex
from index.pipeline import SearchPipeline
from storage.segment import DocumentKey
from storage.store import IndexStore
from writes.commit import merge_segments, update_index


class LocalBackend:
    def __init__(self, index_dir: Path) -> None:
        self.index_dir = Path(index_dir)
        self.where = str(self.index_dir)

    def exists(self) -> bool:
        return IndexStore(self.index_dir).exists()

    def is_empty(self) -> bool:
        return IndexStore(self.index_dir).is_empty()

    def version(self) -> str | None:
        """What CURRENT names, unchecked (each server process reads it four times a second; opening the version
        checks it)."""
        try:
            return (self.index_dir / "CURRENT").read_text(encoding="utf-8").strip() or None
        except (FileNotFoundError, UnicodeDecodeError):
            return None

    def open(self, encoder: Encoder, previous: ClauseIndex | None = None,
             pipeline: SearchPipeline | None = None) -> ClauseIndex:
        """Segments never change once written: those of `previous` are reused as they are."""
        opened = {s.name: s for s in previous.segments} if isinstance(previous, ClauseIndex) else {}
        return ClauseIndex.open(self.index_dir, encoder, opened, pipeline)

    def document_keys(self) -> list[DocumentKey]:
        return IndexStore(self.index_dir).document_keys()

    def write(self, encoder: Encoder, add_documents, add_clauses, replace_sources=frozenset(), remove_doc_ids=frozenset(),
              with_context=True, on_embedded=None, merge=True) -> str:
        return update_index(self.index_dir, encoder, add_documents, add_clauses, replace_sources, remove_doc_ids,
                            with_context, on_embedded, merge)

    def merge(self) -> str | None:
        return merge_segments(self.index_dir)
