"""Search, clause context, index statistics and health: the read side of the API."""

from __future__ import annotations

import os
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from api.deps import live_index, search_queue
from api.errors import ApiError
from api.schemas import ClauseResponse, ErrorBody, SearchResponse, Stats, clause_view, search_result
from api.search_queue import SearchQueue, SearchRequest
from index.types import MAX_K, MAX_QUERY_CHARS, Filters, Mode, document_info
from writes.service import LiveIndex

router = APIRouter()
ERRORS = {422: {"model": ErrorBody, "description": "bad query parameters"},
          503: {"model": ErrorBody, "description": "no index yet"}}


@router.get("/api/search", response_model=SearchResponse, responses=ERRORS, tags=["search"])
async def search(
    searches: Annotated[SearchQueue, Depends(search_queue)],
    q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS, description="question or keywords, e.g. 班额标准")],
    k: Annotated[int, Query(ge=1, le=MAX_K, description="number of results")] = 10,
    mode: Annotated[Mode, Query(description="retrieval mode")] = "hybrid",
    doc: Annotated[str | None, Query(max_length=200, description="only this document id")] = None,
    issuer: Annotated[str | None, Query(max_length=100, description="only documents whose issuer contains this")] = None,
    region: Annotated[str | None, Query(max_length=100, description="only documents whose region contains this")] = None,
    year: Annotated[int | None, Query(ge=1900, le=2100, description="only documents dated in this year")] = None,
    rerank: Annotated[bool, Query(description="reorder the best candidates with the reranker (when one is configured)")] = True,
) -> Response:
    """The best clauses for a query, best first, each with its document and why it matched."""
    start = time.perf_counter()
    hits = await searches.search(SearchRequest(q, k, mode, Filters(doc_id=doc, issuer=issuer, region=region, year=year),
                                               rerank))
    took = (time.perf_counter() - start) * 1000
    body = SearchResponse(
        query=q, mode=mode, k=k, took_ms=round(took, 2),
        results=[search_result(rank, hit) for rank, hit in enumerate(hits, 1)],
    )
    # Sent as the model's own JSON: returning the model would have FastAPI validate it again (bench/load.py).
    return Response(body.model_dump_json(), media_type="application/json")


@router.get("/api/clauses/{clause_id:path}", response_model=ClauseResponse,
            responses={404: {"model": ErrorBody}, 503: ERRORS[503]}, tags=["documents"])
def get_clause(
    live: Annotated[LiveIndex, Depends(live_index)],
    clause_id: str,
    context: Annotated[int, Query(ge=0, le=20, description="clauses to include before and after")] = 1,
) -> ClauseResponse:
    """One clause with the clauses around it in its document."""
    index = live.index
    clause = index.get_clause(clause_id)
    if clause is None:
        raise ApiError(404, "not_found", f"no clause with id {clause_id!r}")
    previous, following = index.neighbours(clause_id, context, context)
    return ClauseResponse(
        clause=clause_view(clause),
        document=document_info(index.documents[clause.doc_id]),
        previous=[clause_view(c) for c in previous],
        next=[clause_view(c) for c in following],
    )


@router.get("/api/stats", response_model=Stats, responses={503: ERRORS[503]}, tags=["index"])
def stats(live: Annotated[LiveIndex, Depends(live_index)]) -> Stats:
    """Size of the index and the model that built it."""
    index = live.index
    manifest = index.manifest
    return Stats(
        documents=len(index.documents),
        clauses=len(index.clauses),
        model=str(manifest.get("model_id")),
        dimensions=int(manifest.get("dimensions") or 0),
        index_version=str(manifest.get("version")),
        created=manifest.get("created"),
        embedding_context=manifest.get("embedding_context"),
    )


@router.get("/healthz", tags=["index"])
def healthz(live: Annotated[LiveIndex, Depends(live_index)]) -> dict:
    """Liveness: `ok` once the server answers; `index` says whether there is anything to search, `version`
    which version this process serves and `process` which process answered (one of `--workers`)."""
    try:
        clauses = len(live.index.clauses)
    except Exception:  # noqa: BLE001 - health must answer whatever the index's state
        return {"status": "ok", "index": "missing", "process": os.getpid()}
    return {"status": "ok", "index": "ready", "clauses": clauses, "version": live.version, "process": os.getpid()}
