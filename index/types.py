"""What every search returns and every backend shares: queries, filters, hits, and the candidates a backend
supplies to the search pipeline (index/pipeline.py)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Literal, get_args

import numpy as np
from pydantic import BaseModel

from ingest.schema import Clause, Document

Mode = Literal["hybrid", "dense", "lexical"]
MODES: tuple[Mode, ...] = get_args(Mode)
MAX_QUERY_CHARS = 1000
MAX_K = 100


class QueryError(ValueError):
    """A query the index cannot answer as asked (empty, too long, unknown mode, bad k)."""


class ModelMismatchError(Exception):
    def __init__(self, built_with: str, configured: str) -> None:
        super().__init__(
            f"this index was built with the embedding model '{built_with}', but the configured model is "
            f"'{configured}': set POLICYQA_MODEL back, or ingest into a new index directory (`policyqa ingest PATH --index-dir DIR`)"
        )


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
    # The reranker's relevance in [0, 1], when it reordered this hit.
    rerank_score: float | None = None
    matched_terms: list[str] = []
    also_in: list[AlsoIn] = []


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


Ranked = dict[Hashable, tuple[int, float]]  # candidate -> (rank, score), from one retriever


@dataclass(frozen=True)
class Candidates:
    """What a backend found for a query: each retriever's ranked candidates, how to read a candidate's clause,
    and (where the backend stores them) the near-duplicate sketches of candidates (index/collapse.py)."""

    dense: Ranked
    lexical: Ranked
    clause_of: Callable[[Hashable], Clause]
    sketches_of: Callable[[Sequence[Hashable]], np.ndarray] | None = None

    @staticmethod
    def none() -> Candidates:
        return Candidates({}, {}, lambda key: None)
