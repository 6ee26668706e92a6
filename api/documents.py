"""Documents: list, read with clause boundaries, upload, delete (writes need the API key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, UploadFile

from api.deps import live_index, require_api_key, settings
from api.errors import ApiError
from api.schemas import (
    DeleteResponse,
    DocumentListResponse,
    DocumentResponse,
    DocumentSummary,
    ErrorBody,
    SkippedItem,
    UploadResponse,
    clause_view,
)
from index.clause_index import ClauseIndex, document_info
from index.live import LiveIndex, Upload
from ingest.schema import Document
from policyqa.settings import Settings

router = APIRouter(tags=["documents"])
MAX_FILES_PER_UPLOAD = 50


def _summary(index: ClauseIndex, doc: Document) -> DocumentSummary:
    return DocumentSummary(**document_info(doc).model_dump(), clauses=len(index.document_clauses(doc.doc_id)),
                           chars=doc.chars)


@router.get("/api/documents", response_model=DocumentListResponse, responses={503: {"model": ErrorBody}})
def list_documents(live: Annotated[LiveIndex, Depends(live_index)]) -> DocumentListResponse:
    """Every document in the index with its metadata and clause count."""
    index = live.index
    return DocumentListResponse(documents=[_summary(index, d) for d in index.documents.values()])


@router.get("/api/documents/{doc_id}", response_model=DocumentResponse, responses={404: {"model": ErrorBody}})
def get_document(live: Annotated[LiveIndex, Depends(live_index)], doc_id: str) -> DocumentResponse:
    """A document's full text and where each clause stands in it (`char_start`..`char_end`)."""
    index = live.index
    doc = index.documents.get(doc_id)
    if doc is None:
        raise ApiError(404, "not_found", f"no document with id {doc_id!r}")
    return DocumentResponse(
        **_summary(index, doc).model_dump(),
        text=doc.text,
        clause_spans=[clause_view(c) for c in index.document_clauses(doc_id)],
    )


@router.post(
    "/api/documents",
    response_model=UploadResponse,
    dependencies=[Depends(require_api_key)],
    responses={401: {"model": ErrorBody}, 413: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)
def upload_documents(
    live: Annotated[LiveIndex, Depends(live_index)],
    config: Annotated[Settings, Depends(settings)],
    files: Annotated[list[UploadFile], File(min_length=1, description="one or more .txt .md .html .htm .docx .pdf files")],
) -> UploadResponse:
    """Add documents to the index without a restart; a file name uploaded again replaces its document.

    Limits: at most 50 files per request, each at most `POLICYQA_MAX_UPLOAD_BYTES` (10 MiB by default).
    When no file yields a document (wrong type, unreadable, empty) the answer is 422 and the index is
    unchanged; otherwise the files that could not be used are listed under `skipped`.
    """
    if len(files) > MAX_FILES_PER_UPLOAD:
        raise ApiError(413, "too_many_files", f"{len(files)} files in one upload; the limit is {MAX_FILES_PER_UPLOAD}")
    uploads = []
    for file in files:
        content = file.file.read(config.max_upload_bytes + 1)
        if len(content) > config.max_upload_bytes:
            raise ApiError(413, "file_too_large", f"{file.filename or 'a file'} is larger than the upload limit of "
                           f"{config.max_upload_bytes:,} bytes (POLICYQA_MAX_UPLOAD_BYTES); nothing was added")
        uploads.append(Upload(filename=file.filename or "upload", content=content))
    report = live.add_uploads(uploads)
    result = report.result
    skipped = [SkippedItem(file=s.path, reason=s.reason) for s in result.skipped]
    duplicates = [SkippedItem(file=s.path, reason=s.reason) for s in result.duplicates]
    if report.version is None and not duplicates:
        raise ApiError(422, "no_document", "no uploaded file could be read as a document; the index is unchanged",
                       [s.model_dump() for s in skipped])
    index = live.index
    return UploadResponse(
        version=report.version,
        files=result.files,
        documents=[_summary(index, d) for d in result.documents],
        clauses_added=len(result.clauses),
        duplicates=duplicates,
        skipped=skipped,
    )


@router.delete(
    "/api/documents/{doc_id}",
    response_model=DeleteResponse,
    dependencies=[Depends(require_api_key)],
    responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody}},
)
def delete_document(live: Annotated[LiveIndex, Depends(live_index)], doc_id: str) -> DeleteResponse:
    """Remove a document; the other documents keep their embeddings."""
    report = live.remove([doc_id])
    return DeleteResponse(deleted=report.removed, version=str(report.version))
