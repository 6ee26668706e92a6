"""Limits on what the server reads: the API key before any byte of a write's body, and body sizes.

A pure ASGI middleware, so it runs before FastAPI reads (or spools) a body: a write without the
key is answered 401 at once, a declared `Content-Length` over the limit 413 at once, and a body
sent without one (chunked) is counted as it streams and answered 413 once it passes the limit.
An upload's multipart body must also reach its closing boundary: a cut-off one is a 400, never a
partial upload.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from python_multipart.multipart import parse_options_header
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.openai_errors import error_for_path
from policyqa.settings import Settings

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
UPLOAD_PATH = "/api/documents"
UNAUTHORIZED = ("this server needs an API key for changes: send it as `X-API-Key: <key>` "
                "(or `Authorization: Bearer <key>`)")
# Sent with every refusal: the server stops reading a body it will never use.
CLOSE = {"Connection": "close"}


def has_api_key(headers: Headers, expected: str | None) -> bool:
    """Whether the request carries the configured key; with none configured (localhost default) every request does."""
    if not expected:
        return True
    given = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ").strip()
    return bool(given) and secrets.compare_digest(given.encode(), expected.encode())


def needs_api_key(scope: Scope) -> bool:
    """Every write under /api/ changes the index; chat (/v1) only reads it."""
    return scope["method"] in WRITE_METHODS and scope["path"].startswith("/api/")


def is_upload(scope: Scope) -> bool:
    return scope["method"] == "POST" and scope["path"] == UPLOAD_PATH


class _BodyRefused(Exception):
    """Raised from `receive` to stop the app reading a body the middleware refuses."""


class _ClosingBoundary:
    """Watches a multipart body as it streams for its closing delimiter `--boundary--`."""

    def __init__(self, content_type: str) -> None:
        _, options = parse_options_header(content_type)
        boundary = options.get(b"boundary")
        self.delimiter = b"--" + boundary + b"--" if boundary else b""
        self.seen = not boundary  # no boundary at all: Starlette's own 400 says so
        self.tail = b""

    def feed(self, chunk: bytes) -> None:
        if not self.seen:
            window = self.tail + chunk
            self.seen = self.delimiter in window
            self.tail = window[-(len(self.delimiter) - 1) :]


class _BodyGuard:
    """One request's `receive`, counting bytes as they arrive; `refusal` is set once it refuses the body."""

    def __init__(self, receive: Receive, limit: int, too_large: Callable[[], Response], scope: Scope) -> None:
        self.receive, self.limit, self.too_large = receive, limit, too_large
        self.path = scope["path"]
        content_type = Headers(scope=scope).get("content-type", "")
        multipart = is_upload(scope) and content_type.startswith("multipart/")
        self.boundary = _ClosingBoundary(content_type) if multipart else None
        self.received = 0
        self.refusal: Response | None = None

    async def __call__(self) -> Message:
        message = await self.receive()
        if message["type"] == "http.request":
            body = message.get("body", b"")
            self.received += len(body)
            if self.received > self.limit:
                self.refusal = self.too_large()
            elif self.boundary:
                self.boundary.feed(body)
                if not message.get("more_body") and not self.boundary.seen:
                    self.refusal = error_for_path(
                        self.path, 400, "truncated_body",
                        "the multipart body ends before its closing boundary (a cut-off upload?); nothing was added",
                        headers=CLOSE)
            if self.refusal is not None:
                raise _BodyRefused
        return message


class RequestLimits:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    def _limit(self, scope: Scope) -> tuple[int, str]:
        if is_upload(scope):
            return self.settings.max_request_bytes, (
                "an upload request (all its files together) may be at most {limit:,} bytes "
                "(POLICYQA_MAX_REQUEST_BYTES): send the files in several requests")
        return self.settings.max_json_bytes, "a request body may be at most {limit:,} bytes (POLICYQA_MAX_JSON_BYTES)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        headers = Headers(scope=scope)
        if needs_api_key(scope) and not has_api_key(headers, self.settings.api_key):
            await error_for_path(path, 401, "unauthorized", UNAUTHORIZED, headers=CLOSE)(scope, receive, send)
            return
        limit, message = self._limit(scope)

        def too_large() -> Response:
            return error_for_path(path, 413, "request_too_large", message.format(limit=limit), headers=CLOSE)

        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await too_large()(scope, receive, send)
            return

        guard = _BodyGuard(receive, limit, too_large, scope)
        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if guard.refusal is None:  # once the body is refused, the answer is ours, whatever the app made of it
                started = True
                await send(message)

        try:
            await self.app(scope, guard, guarded_send)
        except Exception:
            # FastAPI turns an error while reading a body into a 400 of its own, or it propagates:
            # either way, after a refusal the refusal is the answer.
            if guard.refusal is None:
                raise
        if guard.refusal is not None and not started:
            await guard.refusal(scope, receive, send)
