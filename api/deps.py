"""What routers receive from the app: the live index, the settings, and the write guard."""

from __future__ import annotations

import secrets

from fastapi import Header, Request

from api.errors import ApiError
from index.live import LiveIndex
from policyqa.settings import Settings


def live_index(request: Request) -> LiveIndex:
    return request.app.state.live


def settings(request: Request) -> Settings:
    return request.app.state.settings


def require_api_key(
    request: Request,
    x_api_key: str | None = Header(default=None, description="the API key, when the server has one configured"),
    authorization: str | None = Header(default=None, description="`Bearer <API key>`, an alternative to X-API-Key"),
) -> None:
    """Writes need the configured API key; with none configured (localhost default) they are open."""
    expected = request.app.state.settings.api_key
    if not expected:
        return
    given = x_api_key or (authorization or "").removeprefix("Bearer ").strip()
    if not given or not secrets.compare_digest(given.encode(), expected.encode()):
        raise ApiError(401, "unauthorized", "this server needs an API key for changes: send it as `X-API-Key: <key>`")
