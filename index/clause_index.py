"""The clause index: dense (FAISS) + lexical (BM25) over the segments of the live version, and hybrid search.

`ClauseIndex.open` loads the live version (storage/store.py); writes are writes/commit.py. Each segment
is searched on its own rows still live, with BM25 statistics of the whole index, and the candidate
lists are merged: the same results as one segment built from scratch over the same clauses.
"""

from __future__ import annotations

import bisect
import copy
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePath
from typing import Literal, get_args

import numpy as np
from pydantic import BaseModel

from embedding.encoder import Encoder
from index.collapse import collapse_duplicates
from index.fusion import rrf, weighted_sum
from index.lexical import LexicalSegment, LexicalStats
from index.tokenize import expand_query, tokenize
from ingest.normalize import normalize_for_matching
from ingest.schema import Clause, Document
from storage.segment import Segment
from storage.store import IndexStore

Mode = Literal["hybrid", "dense", "lexical"]
MODES: tuple[Mode, ...] = get_args(Mode)
MAX_QUERY_CHARS = 1000
MAX_K = 100
CANDIDATES = 50  # each retriever's depth before fusion


class QueryError(ValueError):
    """A query the index cannot answer as asked (empty, too long, unknown mode, bad k)."""


class ModelMismatchError(Exception):
    def __init__(self, built_with: str, configured: str) -> None:
        super().__init__(
            f"this index was built with the embedding model '{built_with}', but the configured model is "
            f"'{configured}': set POLICYQA_MODEL back, or ingest into a new index directory (`policyqa ingest PATH --index-dir DIR`)"
        )


@dataclass(frozen=True)
class SearchOptions:
    """How hybrid search fuses and expands; fixed when an index is opened."""

    # "weighted" (min-max normalised scores, dense_weight on the dense side) or "rrf". Weighted 0.5 beat
    # RRF by 0.05 MRR@10 on eval/sets/demo.jsonl (bench/retrieval_decisions.py).
    fusion: Literal["weighted", "rrf"] = "weighted"
    dense_weight: float = 0.5
    # Everyday words in a query also ask for their policy terms (index/resources/colloquial_terms.txt).
    expand_queries: bool = True


class Filters(BaseModel):
    doc_id: str | None = None
    issuer: str | None = None
    region: str | None = None
    year: int | None = None


class DocumentInfo(BaseModel):
    doc_id: str
    title: str
    source_path: str
    issuer: str | None = None
    doc_number: str | None = None
    date: str | None = None
    region: str | None = None


class AlsoIn(BaseModel):
    clause_id: str
    doc_id: str
    title: str


class Hit(BaseModel):
    clause: Clause
    document: DocumentInfo
    score: float
    dense_score: float | None = None
    dense_rank: int | None = None
    lexical_score: float | None = None
    lexical_rank: int | None = None
    matched_terms: list[str] = []
    also_in: list[AlsoIn] = []


def clause_input(clause: Clause, with_context: bool) -> str:
    """What the encoder and BM25 read for a clause: normalised text, optionally after its title and headings.

    BM25 always reads the context: queries name the place or the document (`青岛幼儿园配建标准`)
    that only the title carries.
    """
    if not with_context:
        return clause.norm_text
    context = " > ".join([clause.doc_title, *clause.heading_path])
    return normalize_for_matching(context) + "\n" + clause.norm_text


def document_info(doc: Document) -> DocumentInfo:
    info = DocumentInfo(**doc.model_dump(include=set(DocumentInfo.model_fields)))
    info.source_path = shown_source(doc.source_path)
    return info


def cached_document_info(cache: dict[str, DocumentInfo], documents: dict[str, Document], doc_id: str) -> DocumentInfo:
    """`document_info` made once per document (its shown path may resolve the file system)."""
    info = cache.get(doc_id)
    if info is None:
        info = cache[doc_id] = document_info(documents[doc_id])
    return info


def shown_source(path: str) -> str:
    """Where a document came from, as users see it: never the server's folders.

    Relative paths (`data/demo/002.txt`, what `policyqa ingest data/demo` records) stay; absolute
    ones become relative to the working folder, or else keep only the file and its own folder.
    """
    pure = PurePath(path)
    if not pure.is_absolute() and ".." not in pure.parts:
        return path
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return "/".join(pure.parts[-2:])


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
                 options: SearchOptions = SearchOptions()) -> None:
        """`parts`: the version's segments, oldest first, each with the ids of its deleted documents."""
        self.manifest = manifest
        self.options = options
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
             options: SearchOptions = SearchOptions()) -> ClauseIndex:
        """The live version; `opened` holds segments already open (they never change), reused as they are."""
        store = IndexStore(index_dir)
        version = store.live()
        built_with = version.manifest.get("model_id")
        if built_with != encoder.model_id:
            raise ModelMismatchError(str(built_with), encoder.model_id)
        opened = opened or {}
        with store.reading(version.name):
            parts = [(opened.get(name) or Segment(store.segment_folder(name)), deleted) for name, deleted in version.segments]
        return cls(parts, encoder, version.manifest, options)

    def with_options(self, **changes) -> ClauseIndex:
        """This index searching with other `SearchOptions` (the decision benchmarks compare them)."""
        clone = copy.copy(self)
        clone.options = replace(self.options, **changes)
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

    def search(self, query: str, k: int = 10, mode: Mode = "hybrid", filters: Filters | None = None) -> list[Hit]:
        query = checked_query(query, k, mode)
        allowed = self._allowed(filters)
        if allowed is not None and not any(m.any() for m in allowed):
            return []
        masks = allowed or self._live
        depth = candidate_depth(k)
        dense: dict[int, tuple[int, float]] = {}
        lexical: dict[int, tuple[int, float]] = {}
        query_tokens = query_terms(query, self.options)
        if mode in ("hybrid", "dense"):
            vector = self._encoder.encode_queries([normalize_for_matching(query)])[0]
            found = [s.dense.search(vector, depth, mask, every_list=allowed is not None)
                     for s, mask in zip(self.segments, masks, strict=True)]
            dense = self._ranked(found, depth)
        if mode in ("hybrid", "lexical"):
            lexical = self._ranked(self._lexical.search(query_tokens, depth, masks), depth)
        return fused_hits(dense, lexical, mode, self.options, k, query_tokens, self._clause, self.document_info)

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


def filtered_documents(documents: Iterable[Document], filters: Filters | None) -> list[Document] | None:
    """The documents a filter lets through (None: no filter). Issuer and region match as substrings."""
    if filters is None or not any(filters.model_dump().values()):
        return None
    return [
        d
        for d in documents
        if (filters.doc_id is None or d.doc_id == filters.doc_id)
        and (filters.issuer is None or (d.issuer or "").find(filters.issuer) >= 0)
        and (filters.region is None or (d.region or "").find(filters.region) >= 0)
        and (filters.year is None or (d.date or "").startswith(str(filters.year)))
    ]


def checked_query(query: str, k: int, mode: str) -> str:
    """The query stripped, or QueryError saying what is wrong with the request."""
    query = query.strip()
    if not query:
        raise QueryError("the query is empty")
    if len(query) > MAX_QUERY_CHARS:
        raise QueryError(f"the query has {len(query)} characters; the limit is {MAX_QUERY_CHARS}")
    if mode not in MODES:
        raise QueryError(f"unknown mode '{mode}'; use one of {', '.join(MODES)}")
    if not 1 <= k <= MAX_K:
        raise QueryError(f"k must be between 1 and {MAX_K}, not {k}")
    return query


def candidate_depth(k: int) -> int:
    return max(CANDIDATES, 3 * k)


def query_terms(query: str, options: SearchOptions) -> list[str]:
    """The terms BM25 looks up: the query's tokens, with the policy terms of its everyday words if asked."""
    return expand_query(query) if options.expand_queries else tokenize(query)


Ranked = dict[Hashable, tuple[int, float]]  # candidate -> (rank, score), from one retriever


def fused_hits(dense: Ranked, lexical: Ranked, mode: Mode, options: SearchOptions, k: int, query_tokens: list[str],
               clause_of: Callable[[Hashable], Clause], document_info: Callable[[str], DocumentInfo]) -> list[Hit]:
    """The top k hits from each retriever's candidates: fused, near-duplicates collapsed, with why they matched.

    Every backend hands its candidate lists here, so fusion, collapse and highlights are the same on all.
    """
    if mode == "dense":
        fused = {r: s for r, (_, s) in dense.items()}
    elif mode == "lexical":
        fused = {r: s for r, (_, s) in lexical.items()}
    elif options.fusion == "rrf":
        fused = rrf([list(dense), list(lexical)])
    else:
        fused = weighted_sum({r: s for r, (_, s) in dense.items()}, {r: s for r, (_, s) in lexical.items()},
                             options.dense_weight)
    ranked = sorted(fused, key=lambda r: (-fused[r], r))[: candidate_depth(k)]
    groups = collapse_duplicates(ranked, lambda r: clause_of(r).norm_text, limit=k)
    return [_hit(clause_of(row), fused[row], dense.get(row), lexical.get(row), query_tokens,
                 [clause_of(o) for o in others], document_info) for row, others in groups]


def _hit(clause: Clause, score: float, dense, lexical, query_tokens, also: list[Clause], document_info) -> Hit:
    terms = sorted({t for t in query_tokens if t in clause.norm_text}, key=len, reverse=True)
    matched = [t for t in terms if not any(t != longer and t in longer for longer in terms)]
    return Hit(
        clause=clause,
        document=document_info(clause.doc_id),
        score=score,
        dense_rank=dense[0] if dense else None,
        dense_score=dense[1] if dense else None,
        lexical_rank=lexical[0] if lexical else None,
        lexical_score=lexical[1] if lexical else None,
        matched_terms=matched,
        also_in=[AlsoIn(clause_id=c.id, doc_id=c.doc_id, title=c.doc_title) for c in also],
    )
