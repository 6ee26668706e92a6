"""Errors users can meet, mapped once to HTTP status codes and one JSON shape.

Every error body is `{"error": code, "message": text, "detail": ...}`; nothing a client sends
should reach a 500.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from index.types import ModelMismatchError, QueryError
from storage.store import IndexDamagedError, IndexFormatError, IndexMissingError
from writes.job_store import QueueFullError
from writes.service import DocumentBusyError, SourceMissingError, UnknownDocumentError


class ApiError(Exception):
    """An error with its status and code, raised by the routers."""

    def __init__(self, status: int, code: str, message: str, detail: list | dict | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.detail = status, code, message, detail


def describe_error(exc: Exception) -> ApiError | None:
    """The status, code and message of an error users can meet; None for a fault of the server.

    Messages never name the server's folders: an index error says what is wrong and what to run.
    """
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, QueryError):
        return ApiError(422, "bad_query", str(exc))
    if isinstance(exc, UnknownDocumentError):
        return ApiError(404, "not_found", str(exc))
    if isinstance(exc, IndexMissingError):
        return ApiError(503, "no_index", "there is no index yet: add documents with `policyqa ingest PATH` "
                        "or POST /api/documents")
    if isinstance(exc, IndexDamagedError):
        return ApiError(503, "index_damaged", f"the index is damaged ({exc.problem.split(':')[0]}); nothing was "
                        "changed: the server's operator can run `policyqa index repair`")
    if isinstance(exc, ModelMismatchError):
        return ApiError(503, "model_mismatch", str(exc))
    if isinstance(exc, IndexFormatError):
        return ApiError(503, "index_format", "the index was written by an older policyqa: the server's operator "
                        "ingests the documents into a new folder")
    if isinstance(exc, DocumentBusyError):
        return ApiError(409, "document_busy", str(exc))
    if isinstance(exc, SourceMissingError):
        return ApiError(409, "source_missing", str(exc))
    if isinstance(exc, QueueFullError):
        return ApiError(429, "write_queue_full", str(exc))
    return None


def error_response(status: int, code: str, message: str, detail=None, headers=None) -> JSONResponse:
    body = {"error": code, "message": message, "detail": detail}
    return JSONResponse(status_code=status, content=body, headers=headers)


def _validation_message(errors: list[dict]) -> str:
    parts = []
    for e in errors:
        where = ".".join(str(x) for x in e.get("loc", ()) if x not in ("query", "body"))
        parts.append(f"{where}: {e.get('msg')}" if where else str(e.get("msg")))
    return "; ".join(parts)


def _plain(errors) -> list[dict]:
    """Validation errors as JSON-safe dicts (their `input` may be bytes, `ctx` may hold exceptions)."""
    return [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg")), "type": str(e.get("type"))} for e in errors]


def install_error_handlers(app: FastAPI) -> None:
    async def known_error(_: Request, exc: Exception):
        error = describe_error(exc)
        headers = {"Retry-After": "5"} if isinstance(exc, QueueFullError) else None
        return error_response(error.status, error.code, error.message, error.detail, headers)

    for known in (ApiError, QueryError, UnknownDocumentError, IndexMissingError, IndexDamagedError,
                  IndexFormatError, ModelMismatchError, QueueFullError, SourceMissingError, DocumentBusyError):
        app.add_exception_handler(known, known_error)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError):
        errors = _plain(exc.errors())
        return error_response(422, "invalid_request", _validation_message(errors), errors)

    @app.exception_handler(UnicodeDecodeError)
    async def undecodable(_: Request, exc: UnicodeDecodeError):
        return error_response(400, "invalid_encoding", f"the request is not valid UTF-8: {exc.reason}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 413: "too_large"}.get(
            exc.status_code, "http_error"
        )
        return error_response(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))


def _valid_utf8(raw: bytes) -> bool:
    try:
        unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class RejectInvalidUtf8:
    """ASGI middleware: a path or query string whose percent-escapes are not UTF-8 gets a 400.

    Starlette would decode them with replacement characters and search for `��`.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and not (
            _valid_utf8(scope.get("query_string", b"")) and _valid_utf8(scope.get("raw_path") or b"")
        ):
            response = error_response(400, "invalid_encoding", "the URL is not valid UTF-8 (percent-escapes must encode UTF-8 text)")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
