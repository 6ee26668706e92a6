"""The /v1 routes' dialect of errors: OpenAI's shape and statuses, so OpenAI clients raise the
exception they would raise against OpenAI (BadRequestError for 400, NotFoundError for 404, ...).

Errors still go through the app's handlers, the one mapping of errors to codes; only the envelope
changes: `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from api.errors import error_response

_OPENAI_TYPES = {401: "authentication_error", 429: "rate_limit_error"}


def openai_error_response(status: int, code: str, message: str, param: str | None = None, headers=None) -> JSONResponse:
    """OpenAI's error shape, for the /v1 routes: OpenAI clients read their message and raise the matching exception."""
    kind = "server_error" if status >= 500 else _OPENAI_TYPES.get(status, "invalid_request_error")
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(status_code=status, content=body, headers=headers)


def error_for_path(path: str, status: int, code: str, message: str, headers=None) -> JSONResponse:
    """An error in the shape its route speaks: OpenAI's under /v1/, the project's elsewhere."""
    if path.startswith("/v1/"):
        return openai_error_response(status, code, message, headers=headers)
    return error_response(status, code, message, headers=headers)


def _param(loc: list) -> str | None:
    """A validation error's location as OpenAI names parameters: `messages[0].role`."""
    names = [f"[{x}]" if isinstance(x, int) else str(x) for x in loc if x != "body"]
    return ".".join(names).replace(".[", "[") or None


def openai_shaped(response: JSONResponse) -> JSONResponse:
    """A project error response in OpenAI's shape; an invalid request is a 400, as OpenAI answers it."""
    body = json.loads(response.body)
    detail = body.get("detail")
    first = detail[0] if isinstance(detail, list) and detail and isinstance(detail[0], dict) else {}
    # A body that is not JSON is located by character position, which names no parameter.
    param = _param(first.get("loc", [])) if first.get("type") != "json_invalid" else None
    status = 400 if response.status_code == 422 else response.status_code
    headers = {k: v for k, v in response.headers.items() if k not in ("content-length", "content-type")}
    return openai_error_response(status, body["error"], body["message"], param, headers)


class OpenAIRoute(APIRoute):
    """A /v1 route: its errors go through the app's handlers (the one mapping of errors to codes)
    and come out in OpenAI's shape."""

    def get_route_handler(self) -> Callable:
        handle = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handle(request)
            except Exception as exc:
                handlers = request.app.exception_handlers
                handler = next((handlers[c] for c in type(exc).__mro__ if c in handlers), None)
                if handler is None:
                    raise
                return openai_shaped(await handler(request, exc))

        return route


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str = Field(description="invalid_request_error, authentication_error, server_error, ...")
    param: str | None = Field(default=None, description="the request field at fault, e.g. max_tokens")
    code: str | None = Field(default=None, description="machine-readable, e.g. model_not_found (see docs/api.md)")


class OpenAIErrorBody(BaseModel):
    error: OpenAIErrorDetail
