"""Documents: list, read with clause boundaries, upload, correct metadata, re-parse, delete (writes need the
API key); write jobs.

Uploads, corrections and deletes are jobs in the live index's job store on disk (writes/job_store.py), so
any server process takes them and any reports them; the process holding the writer lock runs them with the
handlers below. An upload answers 202 with its job at once unless `?wait=true`; the other writes wait
unless `?wait=false`. A waiting route is `async` and polls the job without holding a worker thread, so any
number of waiting writes leaves the thread pool to searches; a write still running after
`POLICYQA_WRITE_WAIT_SECONDS` is answered 202 as well.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, UploadFile
from fastapi.responses import JSONResponse

from api.deps import live_index, require_api_key, settings
from api.errors import ApiError, describe_error
from api.schemas import (
    DeleteResponse,
    DocumentListResponse,
    DocumentResponse,
    DocumentSummary,
    ErrorBody,
    JobList,
    JobView,
    MergeResponse,
    MetadataResponse,
    SkippedItem,
    UploadLimits,
    UploadResponse,
    clause_view,
)
from backends.base import SearchIndex
from index.types import document_info
from ingest.readers import SUPPORTED_SUFFIXES
from ingest.schema import Document
from policyqa.settings import Settings
from writes.job_store import Handler, Job, JobRunner
from writes.overrides import MetadataChange
from writes.service import WRITE_NICENESS, LiveIndex, Upload, WriteReport, lower_write_priority, unsupported_type

router = APIRouter(tags=["documents"])
MAX_FILES_PER_UPLOAD = 50
NO_DOCUMENT = "no uploaded file could be read as a document; the index is unchanged"
WaitParam = Annotated[bool, Query(description="wait for the write to finish (false: answer 202 with the job at once)")]
JOB_POLL_SECONDS = 0.05
WRITE_FAILED = "the write failed inside the server; the index is unchanged"
WRITE_ERRORS = {202: {"model": JobView, "description": "the write is queued or still running: follow `status_url`"},
                401: {"model": ErrorBody}, 429: {"model": ErrorBody, "description": "too many writes waiting"},
                403: {"model": ErrorBody, "description": "sent by a page on another site (`cross_site`)"}}


def job_view(job: Job) -> JobView:
    error = ErrorBody(**{k: job.error.get(k) for k in ("error", "message", "detail")}) if job.error else None
    times = {k: getattr(job, k) and datetime.fromisoformat(getattr(job, k)) for k in ("submitted", "started", "finished")}
    return JobView(job_id=job.id, kind=job.kind, subject=job.subject, state=job.state, stage=job.stage, done=job.done,
                   total=job.total, attempts=job.attempts, **times, status_url=f"/api/jobs/{job.id}", result=job.result, error=error)


def job_error(exc: Exception) -> dict:
    """A failed job's error as its record keeps it: the HTTP status and body a waiting client is answered."""
    known = describe_error(exc)
    if known is None:
        return {"status": 500, "error": "write_failed", "message": WRITE_FAILED, "detail": None}
    return {"status": known.status, "error": known.code, "message": known.message, "detail": known.detail}


def job_handlers(live: LiveIndex) -> dict[str, Handler]:
    """What each kind of job does, and the answer its record keeps (the route's response, as JSON)."""
    def upload(job: Job, staged: Path):
        return _upload_response(live, live.add_staged(staged, job.subject))

    def remove(job: Job, _: Path):
        report = live.remove(job.subject, missing_ok=job.attempts > 1)  # run again: the first run may have removed them
        return DeleteResponse(deleted=job.subject, version=str(report.version))

    def metadata(job: Job, _: Path):
        return _metadata_response(live, live.set_metadata(job.subject[0], MetadataChange(**job.params["change"])))

    def reparse(job: Job, _: Path):
        return _upload_response(live, live.reparse(job.subject[0]))

    def merge(job: Job, _: Path):
        return MergeResponse(version=live.merge())

    def as_json(handler):
        return lambda job, staged: handler(job, staged).model_dump(mode="json")

    return {kind: as_json(h) for kind, h in
            {"upload": upload, "remove": remove, "metadata": metadata, "reparse": reparse, "merge": merge}.items()}


def start_writer(live: LiveIndex, niceness: int = WRITE_NICENESS) -> JobRunner:
    """Run the live index's jobs in this process whenever it holds the writer lock (see writes/job_store.py), on a
    thread at `niceness`."""
    runner = JobRunner(live.jobs, job_handlers(live), job_error, before=lambda: lower_write_priority(niceness))
    live.progress = runner.progress
    runner.start()
    return runner


async def _finish(live: LiveIndex, job: Job, wait: bool, wait_seconds: float):
    """The job's result once done (its error, if it failed), or 202 with the job when the client would rather
    not wait (or waited enough)."""
    deadline = time.monotonic() + wait_seconds
    while wait and not job.is_finished and time.monotonic() < deadline:
        await asyncio.sleep(JOB_POLL_SECONDS)
        job = live.jobs.get(job.id) or job
    if wait and job.state == "done":
        return job.result
    if wait and job.state == "failed":
        error = job.error
        raise ApiError(error["status"], error["error"], error["message"], error.get("detail"))
    return JSONResponse(status_code=202, content=job_view(job).model_dump(mode="json"))


def _summary(index: SearchIndex, doc: Document) -> DocumentSummary:
    return DocumentSummary(**document_info(doc).model_dump(), clauses=index.clause_count(doc.doc_id),
                           chars=doc.chars, added=doc.added)


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


@router.get("/api/limits", response_model=UploadLimits)
def upload_limits(config: Annotated[Settings, Depends(settings)]) -> UploadLimits:
    """What an upload may hold (the page shows it and words its refusals with it)."""
    return UploadLimits(max_files_per_upload=MAX_FILES_PER_UPLOAD, max_file_bytes=config.max_file_bytes,
                        file_types=list(SUPPORTED_SUFFIXES))


@router.post(
    "/api/documents",
    response_model=UploadResponse,
    dependencies=[Depends(require_api_key)],
    responses={**WRITE_ERRORS, 413: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)
async def upload_documents(
    live: Annotated[LiveIndex, Depends(live_index)],
    config: Annotated[Settings, Depends(settings)],
    files: Annotated[list[UploadFile], File(min_length=1, description="one or more .txt .md .html .htm .docx .pdf files")],
    wait: Annotated[bool, Query(description="wait for the write and answer its result (default: 202 with the job at "
                                "once; follow `status_url` for its stage and progress)")] = False,
) -> UploadResponse:
    """Add documents to the index without a restart; a file name uploaded again replaces its document.

    Answers 202 at once with the job (`?wait=true`: waits and answers 200 with the result, as scripts expect).

    Limits: at most 50 files per request, each at most `POLICYQA_MAX_FILE_BYTES` (10 MiB by default).
    When no file yields a document (wrong type, unreadable, empty) the answer is 422 and the index is
    unchanged; otherwise the files that could not be used are listed under `skipped`.
    """
    if len(files) > MAX_FILES_PER_UPLOAD:
        raise ApiError(413, "too_many_files", f"{len(files)} files in one upload; the limit is {MAX_FILES_PER_UPLOAD}",
                       {"files": len(files), "limit": MAX_FILES_PER_UPLOAD})
    uploads = []
    for file in files:
        content = await file.read(config.max_file_bytes + 1)
        if len(content) > config.max_file_bytes:
            raise ApiError(413, "file_too_large", f"{file.filename or 'a file'} is larger than the upload limit of "
                           f"{config.max_file_bytes:,} bytes (POLICYQA_MAX_FILE_BYTES); nothing was added",
                           {"file": file.filename, "limit_bytes": config.max_file_bytes})
        uploads.append(Upload(filename=file.filename or "upload", content=content))
    refused = [SkippedItem.of(refusal) for u in uploads if (refusal := unsupported_type(u.filename))]
    if len(refused) == len(uploads):  # nothing to queue: say so now, not in a job
        raise ApiError(422, "no_document", NO_DOCUMENT, [s.model_dump() for s in refused])
    return await _finish(live, live.submit_uploads(uploads), wait, config.write_wait_seconds)


def _upload_response(live: LiveIndex, report: WriteReport) -> UploadResponse:
    result = report.result
    skipped = [SkippedItem.of(s) for s in result.skipped]
    duplicates = [SkippedItem.of(s) for s in result.duplicates]
    if report.version is None and not duplicates:
        raise ApiError(422, "no_document", NO_DOCUMENT, [s.model_dump() for s in skipped])
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
    responses={**WRITE_ERRORS, 404: {"model": ErrorBody}},
)
async def delete_document(
    live: Annotated[LiveIndex, Depends(live_index)],
    config: Annotated[Settings, Depends(settings)],
    doc_id: str,
    wait: WaitParam = True,
) -> DeleteResponse:
    """Remove a document; the other documents keep their embeddings. An unknown id is answered at once (404)."""
    return await _finish(live, live.submit_removal([doc_id]), wait, config.write_wait_seconds)


@router.patch(
    "/api/documents/{doc_id}",
    response_model=MetadataResponse,
    dependencies=[Depends(require_api_key)],
    responses={**WRITE_ERRORS, 404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)
async def correct_metadata(
    live: Annotated[LiveIndex, Depends(live_index)],
    config: Annotated[Settings, Depends(settings)],
    doc_id: str,
    change: MetadataChange,
    wait: WaitParam = True,
) -> MetadataResponse:
    """Correct a document's title, 发文机关, 文号, date or region (a field left out keeps its value, "" clears it).

    The correction is kept beside the index and applied again whenever the same file is re-ingested; filters
    and citations use it at once. A new title re-embeds the document's clauses (their context names it).
    """
    return await _finish(live, live.submit_metadata(doc_id, change), wait, config.write_wait_seconds)


def _metadata_response(live: LiveIndex, report: WriteReport) -> MetadataResponse:
    index = live.index
    return MetadataResponse(version=str(report.version),
                            document=_summary(index, index.documents[report.result.documents[0].doc_id]))


@router.post(
    "/api/documents/{doc_id}/reparse",
    response_model=UploadResponse,
    dependencies=[Depends(require_api_key)],
    responses={**WRITE_ERRORS, 404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
)
async def reparse_document(
    live: Annotated[LiveIndex, Depends(live_index)],
    config: Annotated[Settings, Depends(settings)],
    doc_id: str,
    wait: WaitParam = True,
) -> UploadResponse:
    """Parse the file a document came from again (after a parser upgrade); its documents are replaced and
    corrected metadata is kept. 409 when the file is no longer on the server."""
    return await _finish(live, live.submit_reparse(doc_id), wait, config.write_wait_seconds)


@router.get("/api/jobs", response_model=JobList, tags=["jobs"])
def list_jobs(live: Annotated[LiveIndex, Depends(live_index)]) -> JobList:
    """Recent writes, newest first: queued, running, done or failed."""
    return JobList(jobs=[job_view(j) for j in live.jobs.jobs()])


@router.get("/api/jobs/{job_id}", response_model=JobView, responses={404: {"model": ErrorBody}}, tags=["jobs"])
def get_job(live: Annotated[LiveIndex, Depends(live_index)], job_id: str) -> JobView:
    """One write: its state, and its result (done) or error (failed)."""
    job = live.jobs.get(job_id)
    if job is None:
        raise ApiError(404, "not_found", f"no job with id {job_id!r} (the newest 200 finished jobs are kept)")
    return job_view(job)
