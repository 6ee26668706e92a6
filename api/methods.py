"""Which methods a path allows, from every route on it: OPTIONS, 405s and trailing slashes.

Starlette answers a method no route takes with the methods of the first route that matched the
path alone, so `OPTIONS /api/documents/{id}` said `Allow: GET` although DELETE exists. A pure ASGI
middleware that looks at all the routes answers OPTIONS (204) and wrong methods (405) with the
whole list. Paths take no trailing slash (the app does not redirect): a path that only exists
without it gets a 404 that says so.
"""

from __future__ import annotations

from fastapi.routing import iter_route_contexts
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from api.openai_errors import error_for_path

METHOD_ORDER = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def path_methods(routes: list[BaseRoute], scope: Scope) -> set[str] | None:
    """The methods of the routes on the request's path; None when none is there or a mount takes it."""
    methods: set[str] = set()
    # FastAPI keeps included routers lazily: iter_route_contexts lists the routes inside them.
    for route in iter_route_contexts(routes):
        match, _ = route.matches(scope)
        if match is Match.NONE:
            continue
        route_methods = getattr(route, "methods", None)
        if not route_methods:  # a mount (static files) or an any-method route: not ours to answer
            return None
        methods |= route_methods
    return methods or None


def allow_header(methods: set[str]) -> str:
    return ", ".join(m for m in METHOD_ORDER if m in methods | {"OPTIONS"})


class AllowedMethods:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        routes = scope["app"].router.routes
        method, path = scope["method"], scope["path"]
        methods = path_methods(routes, scope)
        if methods is None:
            without_slash = path.rstrip("/")
            near = path_methods(routes, {**scope, "path": without_slash}) if without_slash != path else None
            if near:
                message = (f"no route {method} {path}: paths end without a slash "
                           f"({without_slash} takes {allow_header(near)})")
                await error_for_path(path, 404, "not_found", message)(scope, receive, send)
                return
            await self.app(scope, receive, send)
        elif method in methods:
            await self.app(scope, receive, send)
        elif method == "OPTIONS":
            await Response(status_code=204, headers={"Allow": allow_header(methods)})(scope, receive, send)
        else:
            allow = allow_header(methods)
            await error_for_path(path, 405, "method_not_allowed", f"{path} does not take {method}; it takes {allow}",
                                 headers={"Allow": allow})(scope, receive, send)
