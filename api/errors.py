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

from index.clause_index import ModelMismatchError, QueryError
from index.live import UnknownDocumentError
from index.store import IndexMissingError


class ApiError(Exception):
    """An error with its status and code, raised by the routers."""

    def __init__(self, status: int, code: str, message: str, detail: list | dict | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.detail = status, code, message, detail


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
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.detail)

    @app.exception_handler(QueryError)
    async def query_error(_: Request, exc: QueryError):
        return error_response(422, "bad_query", str(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError):
        errors = _plain(exc.errors())
        return error_response(422, "invalid_request", _validation_message(errors), errors)

    @app.exception_handler(UnicodeDecodeError)
    async def undecodable(_: Request, exc: UnicodeDecodeError):
        return error_response(400, "invalid_encoding", f"the request is not valid UTF-8: {exc.reason}")

    @app.exception_handler(UnknownDocumentError)
    async def unknown_document(_: Request, exc: UnknownDocumentError):
        return error_response(404, "not_found", str(exc))

    @app.exception_handler(IndexMissingError)
    async def index_missing(_: Request, exc: IndexMissingError):
        return error_response(503, "no_index", str(exc))

    @app.exception_handler(ModelMismatchError)
    async def model_mismatch(_: Request, exc: ModelMismatchError):
        return error_response(503, "model_mismatch", str(exc))

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
