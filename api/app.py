"""The FastAPI app: the search API, the OpenAI-compatible chat endpoint and the staff page.

A thin layer over `writes.service.LiveIndex`; `policyqa serve` runs it with uvicorn.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from api import chat, documents, search
from api.errors import RejectInvalidUtf8, install_error_handlers
from api.limits import RequestLimits
from api.methods import AllowedMethods
from api.openai_errors import OpenAIErrorBody
from api.schemas import ErrorBody
from api.search_queue import SearchQueue
from api.security import install_security
from api.workers import AnsweredBy
from embedding.encoder import Encoder, load_encoder
from index.dense import search_on_one_thread
from index.pipeline import SearchPipeline
from policyqa.settings import Settings
from writes.service import LiveIndex

STATIC = resources.files("api") / "static"
BAD_REQUEST = ("malformed request: a Host header this server does not answer to (`bad_host`, see "
               "POLICYQA_ALLOWED_HOSTS), a URL that is not UTF-8, a malformed body")
API_ERRORS = {422: {"model": ErrorBody, "description": "invalid parameters"}}
# "4XX" also keeps FastAPI from listing its own 422, which /v1 never answers (invalid requests are 400 there).
V1_ERRORS = {400: {"model": OpenAIErrorBody, "description": BAD_REQUEST},
             "4XX": {"model": OpenAIErrorBody, "description": "any other refusal, in OpenAI's shape"}}


@asynccontextmanager
async def _serving_writes(app: FastAPI):
    """In each server process (after a fork, when several serve): see the versions others commit, answer searches
    on a thread of its own, and, unless a writer process of their own runs them (api/workers.py), run the write
    jobs whenever this process holds the writer lock."""
    live = app.state.live
    watcher = live.watch_versions()
    runner = documents.start_writer(live) if app.state.writes_in_process else None
    app.state.searches = SearchQueue(live)
    try:
        yield
    finally:
        watcher.set()
        if runner:
            runner.stop()
        app.state.searches.stop()


def create_app(settings: Settings | None = None, encoder: Encoder | None = None,
               pipeline: SearchPipeline | None = None) -> FastAPI:
    settings = settings or Settings()
    search_on_one_thread()
    encoder = encoder or load_encoder(settings, concurrent=True)
    pipeline = pipeline or SearchPipeline.from_settings(settings, concurrent=True)
    # FastAPIOffline: /docs and /redoc load Swagger UI and ReDoc from the server, not a CDN (offline machines).
    app = FastAPIOffline(
        title="policyqa",
        description="Clause-level search and cited answers over Chinese education-policy documents.",
        version="0.1.0",
        # Any route can meet a Host it does not answer to, a URL that is not UTF-8 or a malformed body (400);
        # the /api routes answer bad parameters with 422, /v1 with OpenAI's 400 (the include_router calls below).
        responses={400: {"model": ErrorBody, "description": BAD_REQUEST}},
        # `DELETE /api/documents/` was redirected to the list; api/methods.py answers such paths instead.
        redirect_slashes=False,
        # Swagger UI's validator badge would fetch an image from swagger.io.
        swagger_ui_parameters={"validatorUrl": None},
        lifespan=_serving_writes,
    )
    app.state.settings = settings
    app.state.writes_in_process = True
    app.state.live = LiveIndex.for_settings(settings, encoder, server=True, pipeline=pipeline)
    app.state.live.warm_up()
    install_error_handlers(app)
    app.add_middleware(RejectInvalidUtf8)
    app.add_middleware(AnsweredBy)
    app.add_middleware(AllowedMethods)
    app.add_middleware(RequestLimits, settings=settings)
    install_security(app, settings)
    app.include_router(search.router, responses=API_ERRORS)
    app.include_router(documents.router, responses=API_ERRORS)
    app.include_router(chat.router, responses=V1_ERRORS)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return (STATIC / "index.html").read_text(encoding="utf-8")

    return app
