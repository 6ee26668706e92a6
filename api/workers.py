"""Serving from several processes: gunicorn's arbiter forks `workers` copies of one loaded app.

The app (model, dictionaries, the open index) is built once in the arbiter before it forks, so the
workers share those pages copy-on-write instead of each loading its own. Each worker runs uvicorn's
event loop (uvicorn-worker); its app's lifespan starts what a process needs of its own: the version
watcher and the writer loop (api/app.py). Gunicorn replaces a worker that dies; a worker whose arbiter
dies is killed with it (Linux), so no orphan keeps the port or the writer lock.
"""

from __future__ import annotations

import ctypes
import gc
import os
import signal
import sys

from fastapi import FastAPI
from gunicorn.app.base import BaseApplication

PR_SET_PDEATHSIG = 1
# A search under load answers in well under a second; a worker silent this long is hung and is replaced.
WORKER_TIMEOUT_S = 120


PROCESS_HEADER = b"x-policyqa-process"


class AnsweredBy:
    """ASGI middleware: every response names the process that answered it (which of the workers), for operators
    following a request and for the tests that show any worker answers for any other."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        pid = str(os.getpid()).encode()

        async def send_named(message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (PROCESS_HEADER, pid)]
            await send(message)

        await self.app(scope, receive, send_named)


def die_with_arbiter(server, worker) -> None:
    """gunicorn's post_fork hook: the kernel kills the worker when its arbiter dies (kill -9 included)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class WorkerServer(BaseApplication):
    def __init__(self, app: FastAPI, host: str, port: int, workers: int) -> None:
        self.app = app
        self.options = {
            "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
            "workers": workers,
            "worker_class": "uvicorn_worker.UvicornWorker",
            "preload_app": True,
            "post_fork": die_with_arbiter,
            "timeout": WORKER_TIMEOUT_S,
            "keepalive": 5,  # uvicorn's own default (gunicorn's is 2 s): the same server whatever --workers says
            "graceful_timeout": 30,
            "loglevel": "warning",
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> FastAPI:
        return self.app


def serve_workers(app: FastAPI, host: str, port: int, workers: int) -> None:
    """Serve `app` (already built: forked, not rebuilt) from `workers` processes until stopped.

    What the app allocated is frozen out of the garbage collector first: a collection in a worker would
    otherwise write to every object it visits and so copy the pages the workers share."""
    gc.collect()
    gc.freeze()
    WorkerServer(app, host, port, workers).run()
