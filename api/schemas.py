"""What the HTTP API returns: the JSON contract of /api (field names are part of it)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from index.types import AlsoIn, DocumentInfo, Hit
from ingest.clauses import readable_address
from ingest.schema import Clause, SkipCode, SkippedFile


class ErrorBody(BaseModel):
    error: str = Field(description="machine-readable code, e.g. query_too_long")
    message: str = Field(description="what went wrong and what to do, for people")
    detail: list | dict | None = None


class Scores(BaseModel):
    dense: float | None = Field(description="cosine similarity of query and clause (None: not in the dense top)")
    lexical: float | None = Field(description="BM25 score (None: no shared term)")
    rerank: float | None = Field(None, description="the reranker's relevance, 0-1 (None: not reranked)")


class Ranks(BaseModel):
    dense: int | None
    lexical: int | None


class Highlight(BaseModel):
    start: int = Field(description="offset in `text` (characters)")
    end: int
    term: str


class SearchResult(BaseModel):
    rank: int
    score: float = Field(description="fused score (hybrid) or the one retriever's score; the order follows "
                         "`scores.rerank` first where the reranker reordered the results")
    scores: Scores
    ranks: Ranks
    clause_id: str
    address: str = Field(description="readable clause address, e.g. 二(三)2")
    text: str = Field(description="the clause as shown to users, original script")
    heading_path: list[str]
    highlights: list[Highlight]
    matched_terms: list[str]
    document: DocumentInfo
    also_in: list[AlsoIn] = Field(description="the same clause re-issued by other documents")


class SearchResponse(BaseModel):
    query: str
    mode: str
    k: int
    took_ms: float
    results: list[SearchResult]


class ClauseView(BaseModel):
    clause_id: str
    address: str
    text: str
    heading_path: list[str]
    position: int
    char_start: int
    char_end: int


class ClauseResponse(BaseModel):
    clause: ClauseView
    document: DocumentInfo
    previous: list[ClauseView]
    next: list[ClauseView]


class DocumentSummary(DocumentInfo):
    clauses: int
    chars: int
    added: str | None = Field(default=None, description="when this text entered the index (ISO 8601, UTC)")


class DocumentListResponse(BaseModel):
    documents: list[DocumentSummary]


class DocumentResponse(DocumentSummary):
    text: str = Field(description="the document's cleaned text; clause offsets point into it")
    clause_spans: list[ClauseView]


class UploadLimits(BaseModel):
    max_files_per_upload: int
    max_file_bytes: int = Field(description="POLICYQA_MAX_FILE_BYTES")
    file_types: list[str] = Field(description="the file name endings an upload may have")


class SkippedItem(BaseModel):
    """A file an upload did not add: its name, the kind of problem (`code`) and why."""

    file: str
    code: SkipCode
    reason: str
    duplicate_of: str | None = Field(default=None, description="the doc id of the document with the same text")

    @classmethod
    def of(cls, skipped: SkippedFile) -> SkippedItem:
        return cls(file=skipped.path, code=skipped.code, reason=skipped.reason, duplicate_of=skipped.duplicate_of)


class UploadResponse(BaseModel):
    version: str | None = Field(description="the new index version (None: nothing was added)")
    files: int
    documents: list[DocumentSummary]
    clauses_added: int
    duplicates: list[SkippedItem]
    skipped: list[SkippedItem]


class DeleteResponse(BaseModel):
    deleted: list[str]
    version: str


class MetadataResponse(BaseModel):
    version: str
    document: DocumentSummary = Field(description="the document as searches and citations now show it")


class MergeResponse(BaseModel):
    version: str | None = Field(description="the index version the merge committed (None: nothing was due)")


class JobView(BaseModel):
    job_id: str
    kind: str = Field(description="upload, remove, metadata, reparse, or merge (the server's own, after a write that "
                      "made one due)")
    subject: list[str] = Field(description="the uploaded file names or the removed document ids")
    state: str = Field(description="queued, running, done or failed. A server that stops keeps its jobs: after a "
                       "restart queued jobs run, and a job it was running runs again from its staged files")
    stage: str | None = Field(default=None, description="while running: parsing, embedding or committing")
    done: int | None = Field(default=None, description="files parsed, or characters embedded, so far")
    total: int | None = Field(default=None, description="files to parse, or characters to embed")
    attempts: int = Field(default=0, description="times a writer started it: more than 1 when the server stopped in "
                          "the middle of it and it ran again from its staged files")
    submitted: datetime
    started: datetime | None
    finished: datetime | None
    status_url: str
    result: UploadResponse | DeleteResponse | MetadataResponse | MergeResponse | None = Field(description="what the write did, once done")
    error: ErrorBody | None = Field(description="why it failed (the index is unchanged)")


class JobList(BaseModel):
    jobs: list[JobView]


class Stats(BaseModel):
    documents: int
    clauses: int
    model: str
    dimensions: int
    index_version: str
    created: str | None
    embedding_context: bool | None


def clause_view(clause: Clause) -> ClauseView:
    return ClauseView(
        clause_id=clause.id,
        address=readable_address(clause.id),
        text=clause.text,
        heading_path=clause.heading_path,
        position=clause.position,
        char_start=clause.char_start,
        char_end=clause.char_end,
    )


def highlight_spans(clause: Clause, terms: list[str]) -> list[Highlight]:
    """Where the matched terms stand in the text users see.

    Terms are matched on `norm_text`; its offsets are those of `text` when normalisation kept the
    length (t2s and width folding are one character for one almost always).
    """
    if len(clause.norm_text) != len(clause.text):
        return []
    spans: list[Highlight] = []
    taken = [False] * len(clause.text)
    haystack = clause.norm_text.lower()  # tokens are lower-cased
    for term in sorted(terms, key=len, reverse=True):
        start = haystack.find(term)
        while start >= 0:
            end = start + len(term)
            if not any(taken[start:end]):
                spans.append(Highlight(start=start, end=end, term=clause.text[start:end]))
                taken[start:end] = [True] * len(term)
            start = haystack.find(term, end)
    return sorted(spans, key=lambda h: h.start)


def search_result(rank: int, hit: Hit) -> SearchResult:
    return SearchResult(
        rank=rank,
        score=hit.score,
        scores=Scores(dense=hit.dense_score, lexical=hit.lexical_score, rerank=hit.rerank_score),
        ranks=Ranks(dense=hit.dense_rank, lexical=hit.lexical_rank),
        clause_id=hit.clause.id,
        address=readable_address(hit.clause.id),
        text=hit.clause.text,
        heading_path=hit.clause.heading_path,
        highlights=highlight_spans(hit.clause, hit.matched_terms),
        matched_terms=hit.matched_terms,
        document=hit.document,
        also_in=hit.also_in,
    )
