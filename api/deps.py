"""What routers receive from the app: the live index, the settings, and the write guard."""

from __future__ import annotations

from fastapi import Header, Request

from api.errors import ApiError
from api.limits import UNAUTHORIZED, has_api_key
from api.search_queue import SearchQueue
from policyqa.settings import Settings
from writes.service import LiveIndex


# `async`: FastAPI runs a plain `def` dependency on a worker thread, a thread hop per request for a lookup.
async def live_index(request: Request) -> LiveIndex:
    return request.app.state.live


async def search_queue(request: Request) -> SearchQueue:
    return request.app.state.searches


async def settings(request: Request) -> Settings:
    return request.app.state.settings


def require_api_key(
    request: Request,
    x_api_key: str | None = Header(default=None, description="the API key, when the server has one configured"),
    authorization: str | None = Header(default=None, description="`Bearer <API key>`, an alternative to X-API-Key"),
) -> None:
    """Writes need the configured API key; with none configured (localhost default) they are open.

    `api.limits.RequestLimits` already answered 401 before the body was read; this declares the
    headers in the API docs and guards the route itself as well.
    """
    if not has_api_key(request.headers, request.app.state.settings.api_key):
        raise ApiError(401, "unauthorized", UNAUTHORIZED)
