"""What a browser may do with the server: a Host allow-list, same-origin writes, security headers.

Pure ASGI middlewares (BaseHTTPMiddleware would buffer the chat's streamed answers); refusals come in
the route's error shape (OpenAI's under /v1/, api/openai_errors.py):
- `TrustedHosts`: a Host header outside the allow-list gets 400 `bad_host`. A DNS-rebinding page
  (attacker.example re-pointed to 127.0.0.1) is same-origin with itself; only its Host name gives it away.
- `SameOriginWrites`: POST/PUT/PATCH/DELETE sent by a page on another origin get 403 `cross_site`.
  Browsers send `Origin` on every such request and `Sec-Fetch-Site` too, and a page can set neither;
  clients that are not browsers (curl, scripts, the openai client) send neither and pass unchanged:
  against those only the API key helps.
- `SecurityHeaders`: a CSP without inline script, no MIME sniffing, no framing, no referrer.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.openai_errors import error_for_path
from policyqa.settings import Settings

# Always allowed: a rebinding attack shows its own domain name in Host, never one of these.
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_PORTS = {"http": 80, "https": 443}

PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
# Swagger UI and ReDoc pages start from an inline script and style themselves inline; ReDoc searches in a
# worker it creates from a blob.
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; "
            "base-uri 'none'; form-action 'self'")
DOCS_PATHS = ("/docs", "/redoc")
OTHER_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # Other sites cannot embed our answers (<script src>, <img src>) to read them.
    "Cross-Origin-Resource-Policy": "same-origin",
}


def host_name(value: str) -> str:
    """The name in a Host header or allow-list entry, lower-cased and without port: `[::1]:8000` -> `::1`."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    if value.count(":") == 1:
        return value.partition(":")[0]
    return value


def allowed_hosts(settings: Settings) -> frozenset[str] | None:
    """The names the server answers to (any port), or None when `*` turns the check off."""
    if "*" in settings.allowed_hosts:
        return None
    return LOOPBACK_NAMES | {host_name(settings.host)} | {host_name(h) for h in settings.allowed_hosts}


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:  # a port that is not a number
        return ("", None, None)
    return (parts.scheme, parts.hostname, port)


class TrustedHosts:
    def __init__(self, app: ASGIApp, allowed: frozenset[str] | None) -> None:
        self.app, self.allowed = app, allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.allowed is not None:
            name = host_name(Headers(scope=scope).get("host", ""))
            if name not in self.allowed:
                message = (f"this server does not answer to the host name {name!r}; if that is really its name, "
                           "add it to POLICYQA_ALLOWED_HOSTS")
                await error_for_path(scope["path"], 400, "bad_host", message)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class SameOriginWrites:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in STATE_CHANGING:
            headers = Headers(scope=scope)
            origin = headers.get("origin")
            own = _origin(f"{scope['scheme']}://{headers.get('host', '')}")
            other_origin = origin is not None and _origin(origin) != own
            if other_origin or headers.get("sec-fetch-site") in ("cross-site", "same-site"):
                message = (f"a change sent by a page on another site ({origin or 'origin not given'}) was refused: "
                           "changes are accepted from this server's own page or from clients that are not browsers")
                await error_for_path(scope["path"], 403, "cross_site", message)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = any(scope["path"] == p or scope["path"].startswith(p + "/") for p in DOCS_PATHS)
        added = {"Content-Security-Policy": DOCS_CSP if docs else PAGE_CSP, **OTHER_HEADERS}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in added.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_security(app: FastAPI, settings: Settings) -> None:
    """Adds the three middlewares; the last added runs first, so even a rejection carries the headers."""
    app.add_middleware(SameOriginWrites)
    app.add_middleware(TrustedHosts, allowed=allowed_hosts(settings))
    app.add_middleware(SecurityHeaders)
