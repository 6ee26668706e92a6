"""The local engine: dense (FAISS) + lexical (BM25) candidates over the segments of the live version.

`ClauseIndex.open` loads the live version (storage/store.py); writes are writes/commit.py. Each segment
is searched on its own rows still live, with BM25 statistics of the whole index, and the candidate
lists are merged: the same candidates as one segment built from scratch over the same clauses. The
search pipeline (index/pipeline.py) fuses, collapses and reranks them.
"""

from __future__ import annotations

import bisect
import copy
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from embedding.encoder import Encoder
from index.collapse import SKETCH_SIZE
from index.lexical import LexicalSegment, LexicalStats
from index.pipeline import SearchPipeline, query_vectors
from index.types import (
    Candidates,
    DocumentInfo,
    Filters,
    Hit,
    Mode,
    ModelMismatchError,
    cached_document_info,
    filtered_documents,
)
from ingest.schema import Clause, Document
from storage.segment import Segment
from storage.store import IndexStore


class LiveClauses(Sequence[Clause]):
    """The live clauses of several segments, in order, as one sequence (deleted rows skipped)."""

    def __init__(self, parts: Sequence[tuple[Segment, np.ndarray | None]]) -> None:
        self._parts = [(segment, None if live is None else np.flatnonzero(live)) for segment, live in parts]
        self._starts = list(np.cumsum([0] + [s.size if rows is None else len(rows) for s, rows in self._parts]))

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        part = bisect.bisect_right(self._starts, i) - 1
        segment, rows = self._parts[part]
        local = i - self._starts[part]
        return segment.clauses[local if rows is None else int(rows[local])]

    def __iter__(self) -> Iterator[Clause]:
        for segment, rows in self._parts:
            if rows is None:
                yield from segment.clauses
            else:
                live = set(rows.tolist())
                yield from (c for row, c in enumerate(segment.clauses) if row in live)


class ClauseIndex:
    def __init__(self, parts: Sequence[tuple[Segment, set[str]]], encoder: Encoder, manifest: dict,
                 pipeline: SearchPipeline | None = None) -> None:
        """`parts`: the version's segments, oldest first, each with the ids of its deleted documents;
        `pipeline`: how searches rank (without one: fusion alone, no reranker)."""
        self.manifest = manifest
        self.pipeline = pipeline or SearchPipeline()
        self.segments = [segment for segment, _ in parts]
        self._live = [segment.live_mask(deleted) for segment, deleted in parts]
        self._offsets = list(np.cumsum([0] + [s.size for s in self.segments]))  # a row's global id = offset + row
        self.documents: dict[str, Document] = {}
        self._home: dict[str, int] = {}  # doc id -> the segment that holds it live
        for i, (segment, deleted) in enumerate(parts):
            for doc in segment.documents:
                if doc.doc_id not in deleted:
                    self.documents[doc.doc_id], self._home[doc.doc_id] = doc, i
        self._document_infos: dict[str, DocumentInfo] = {}
        self.clauses = LiveClauses(list(zip(self.segments, self._live, strict=True)))
        self._lexical = LexicalStats([(s.lexical, live) for s, live in zip(self.segments, self._live, strict=True)])
        self._encoder = encoder

    @classmethod
    def open(cls, index_dir: Path, encoder: Encoder, opened: dict[str, Segment] | None = None,
             pipeline: SearchPipeline | None = None) -> ClauseIndex:
        """The live version; `opened` holds segments already open (they never change), reused as they are."""
        store = IndexStore(index_dir)
        version = store.live()
        built_with = version.manifest.get("model_id")
        if built_with != encoder.model_id:
            raise ModelMismatchError(str(built_with), encoder.model_id)
        opened = opened or {}
        with store.reading(version.name):
            parts = [(opened.get(name) or Segment(store.segment_folder(name)), deleted) for name, deleted in version.segments]
        return cls(parts, encoder, version.manifest, pipeline)

    def with_options(self, **changes) -> ClauseIndex:
        """This index searching with other `SearchOptions` (the decision benchmarks compare them)."""
        clone = copy.copy(self)
        clone.pipeline = self.pipeline.with_options(**changes)
        return clone

    def with_lexical(self, token_lists: Sequence[Sequence[str]]) -> ClauseIndex:
        """This index with its lexical side built from other tokens, one list per live clause in order
        (the decision benchmarks compare tokenisations on one index)."""
        lists = iter(token_lists)
        parts = [(LexicalSegment.build([list(next(lists)) if live is None or live[r] else [] for r in range(s.size)]), live)
                 for s, live in zip(self.segments, self._live, strict=True)]
        clone = copy.copy(self)
        clone._lexical = LexicalStats(parts)
        return clone

    def _clause(self, row: int) -> Clause:
        part = bisect.bisect_right(self._offsets, row) - 1
        return self.segments[part].clauses[row - self._offsets[part]]

    def _is_live(self, part: int, row: int) -> bool:
        return self._live[part] is None or bool(self._live[part][row])

    def get_clause(self, clause_id: str) -> Clause | None:
        for part in reversed(range(len(self.segments))):
            row = self.segments[part].row_of.get(clause_id)
            if row is not None and self._is_live(part, row):
                return self.segments[part].clauses[row]
        return None

    def _document_rows(self, doc_id: str) -> tuple[Segment, range]:
        segment = self.segments[self._home[doc_id]]
        return segment, segment.doc_rows.get(doc_id, range(0))

    def document_clauses(self, doc_id: str) -> list[Clause]:
        """A document's clauses in reading order."""
        if doc_id not in self._home:
            return []
        segment, rows = self._document_rows(doc_id)
        return [segment.clauses[r] for r in rows]

    def clause_count(self, doc_id: str) -> int:
        return len(self._document_rows(doc_id)[1]) if doc_id in self._home else 0

    def neighbours(self, clause_id: str, before: int = 1, after: int = 1) -> tuple[list[Clause], list[Clause]]:
        """The clauses just before and after one clause in its own document."""
        clause = self.get_clause(clause_id)
        segment, rows = self._document_rows(clause.doc_id)
        row = segment.row_of[clause_id]
        previous = [segment.clauses[r] for r in range(max(rows.start, row - before), row)]
        following = [segment.clauses[r] for r in range(row + 1, min(rows.stop, row + 1 + after))]
        return previous, following

    def _allowed(self, filters: Filters | None) -> list[np.ndarray | None] | None:
        """Per segment, the rows a filter allows (None: no filter)."""
        docs = filtered_documents(self.documents.values(), filters)
        if docs is None:
            return None
        masks = [np.zeros(s.size, dtype=bool) for s in self.segments]
        for doc in docs:
            part = self._home[doc.doc_id]
            rows = self.segments[part].doc_rows.get(doc.doc_id, range(0))
            masks[part][rows.start:rows.stop] = True
        return masks

    def search(self, query: str, k: int = 10, mode: Mode = "hybrid", filters: Filters | None = None,
               rerank: bool = True) -> list[Hit]:
        return self.pipeline.search(self, query, k, mode, filters, rerank)

    def candidates(self, query: str, terms: list[str], depth: int, mode: Mode, filters: Filters | None) -> Candidates:
        allowed = self._allowed(filters)
        if allowed is not None and not any(m.any() for m in allowed):
            return Candidates.none()
        masks = allowed or self._live
        dense: dict[int, tuple[int, float]] = {}
        lexical: dict[int, tuple[int, float]] = {}
        if mode in ("hybrid", "dense"):
            vector = query_vectors(self._encoder, [query])[0]
            found = [s.dense.search(vector, depth, mask, every_list=allowed is not None)
                     for s, mask in zip(self.segments, masks, strict=True)]
            dense = self._ranked(found, depth)
        if mode in ("hybrid", "lexical"):
            lexical = self._ranked(self._lexical.search(terms, depth, masks), depth)
        return Candidates(dense, lexical, self._clause, self._sketches)

    def _sketches(self, rows: Sequence[int]) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        parts = np.searchsorted(self._offsets, rows, side="right") - 1
        found = np.empty((len(rows), SKETCH_SIZE), dtype=np.uint32)
        for part in np.unique(parts):
            here = parts == part
            found[here] = self.segments[part].sketches[rows[here] - self._offsets[part]]
        return found

    def _ranked(self, per_segment: list[tuple[np.ndarray, np.ndarray]], depth: int) -> dict[int, tuple[int, float]]:
        """{global row: (rank, score)} of the best `depth` over every segment's own best."""
        if not per_segment:  # every document removed: a version without segments
            return {}
        rows = np.concatenate([r + self._offsets[i] for i, (r, _) in enumerate(per_segment)])
        scores = np.concatenate([s for _, s in per_segment]).astype(np.float64)
        order = np.lexsort((rows, -scores))[:depth]
        return {int(rows[i]): (rank, float(scores[i])) for rank, i in enumerate(order, 1)}

    def document_info(self, doc_id: str) -> DocumentInfo:
        """A document as hits show it, made once per document (its shown path may resolve the file system)."""
        return cached_document_info(self._document_infos, self.documents, doc_id)
