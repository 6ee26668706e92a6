"""Serving from several processes: gunicorn's arbiter forks `workers` copies of one loaded app, and a writer.

The app (model, dictionaries, the open index) is built once in the arbiter before it forks, so the
processes share those pages copy-on-write instead of each loading its own. Each HTTP worker runs uvicorn's
event loop (uvicorn-worker); its app's lifespan starts what a process needs of its own: the version
watcher and the search thread (api/app.py). One more process of the same kind runs the write jobs and
answers no requests: the first to take this server's writer role. In an HTTP worker, a job's parsing and
tokenising took the interpreter lock from its searches (search p95 during uploads 1.72x idle, that worker's
p50 3x the other's); in a process of its own, at a low CPU priority, it takes little from them.
Gunicorn replaces any process that dies, the writer too (its replacement takes the role and runs the job
that was cut short again); a process whose arbiter dies is killed with it (Linux), so no orphan keeps the
port or the writer lock.
"""

from __future__ import annotations

import ctypes
import gc
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path

from fastapi import FastAPI
from gunicorn.app.base import BaseApplication
from uvicorn_worker import UvicornWorker

from api.documents import start_writer
from writes.job_store import WriterLock
from writes.service import lower_write_priority

PR_SET_PDEATHSIG = 1
# A search under load answers in well under a second; a worker silent this long is hung and is replaced.
WORKER_TIMEOUT_S = 120


PROCESS_HEADER = b"x-policyqa-process"
# bench/load.py, 2 workers, 50 users, 2026-12-05, same run: closed at 1 s, each worker's p50 within 3 % of the
# other's in both phases; at 3 s within 5 % and 23 %; never closed, 2.2x and 3.7x apart. Reconnecting every
# second cost no CPU per search that the run could see (6.53 vs 6.54 ms at 3 s). Sooner cost some: two rounds, 7k
# clauses, 2026-12-05: 1 s 339 / 330 req/s, p95 294 / 290 ms; 0.5 s 317 / 296, 302 / 318; 0.25 s 314 / 317, 321 / 314.
KEEPALIVE_SECONDS = 1.0
MAX_TRACKED_CONNECTIONS = 4096
# Not the lowest (19, a write thread's within a worker): a process of its own takes no interpreter lock from
# searches, and at 19 it had almost no CPU while the workers kept both cores busy. bench/load.py, 2 workers,
# 50 users, uploads of laws/other, 2026-12-05, same run: search p95 during writes 1.06x / 1.08x / 1.09x idle
# at nice 19 / 10 / 5; the uploads took 39 and 1 s at 19, 23, 6 and 12 s at 10, 14, 4, 17 and 7 s at 5.
WRITER_NICENESS = 10
HEARTBEAT_S = 1.0  # how often the writer tells the arbiter it lives (it is replaced after WORKER_TIMEOUT_S of silence)
_writer_role: Path | None = None  # this server's role lock, made in the arbiter before it forks


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


class RecycledConnections:
    """ASGI middleware: a keep-alive connection is closed once it is `seconds` old (nginx's keepalive_time), and its
    client reconnects to whichever worker accepts it then.

    A busy client keeps its connection, and so its worker, for as long as it likes. Each worker answers its own
    connections in turn, so its latency grows with how many it holds, and who holds how many was drawn when the
    clients first connected: in one run 30 and 20 of 50 (p50 204 vs 121 ms), in the next 38 and 12. Closed by
    age, a worker holding more connections gives up more of them each second, which pulls the shares together;
    closed after a number of requests it would not (both workers answer as many a second, so both would close
    as many; measured: still 2x apart).
    """

    def __init__(self, app, seconds: float) -> None:
        self.app, self.seconds = app, seconds
        self._opened: OrderedDict[tuple, float] = OrderedDict()  # a client address (one connection) -> first seen

    async def __call__(self, scope, receive, send) -> None:
        client = scope.get("client") if scope["type"] == "http" else None
        if client is None:
            await self.app(scope, receive, send)
            return
        now = time.monotonic()
        opened = self._opened.setdefault(client, now)
        closing = now - opened >= self.seconds
        if closing:
            del self._opened[client]
        while len(self._opened) > MAX_TRACKED_CONNECTIONS:  # connections closed by their clients
            self._opened.popitem(last=False)

        async def send_closing(message) -> None:
            if closing and message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
            await send(message)

        await self.app(scope, receive, send_closing)


class ServerProcess(UvicornWorker):
    """One of the server's processes: the writer if it is the first to take the role, otherwise an HTTP worker."""

    def run(self) -> None:
        role = WriterLock(_writer_role)
        if role.acquire():
            self._write()
        else:
            role.release()
            super().run()

    def _write(self) -> None:
        """Run the write jobs until gunicorn stops this process; the jobs wait for the index folder's writer lock, so
        another server's writer on the same folder finishes first."""
        stopping = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            signal.signal(sig, lambda *_: stopping.set())
        lower_write_priority(WRITER_NICENESS)  # the threads started below inherit it
        live = self.wsgi.state.live
        watcher = live.watch_versions()  # a CLI ingest may commit too
        runner = start_writer(live, WRITER_NICENESS)
        while not stopping.wait(HEARTBEAT_S) and self.ppid == os.getppid():
            self.notify()
        runner.stop()
        watcher.set()


class WorkerServer(BaseApplication):
    def __init__(self, app: FastAPI, host: str, port: int, workers: int) -> None:
        self.app = app
        self.options = {
            "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
            "workers": workers + 1,  # and the writer
            "worker_class": "api.workers.ServerProcess",
            "preload_app": True,
            "post_fork": die_with_arbiter,
            # In the arbiter alone (a process that forked from it and exits would unwind any `with` around run()).
            "on_exit": lambda _: shutil.rmtree(_writer_role.parent, ignore_errors=True),
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
    """Serve `app` (already built: forked, not rebuilt) from `workers` HTTP processes and a writer until stopped.

    What the app allocated is frozen out of the garbage collector first: a collection in a worker would
    otherwise write to every object it visits and so copy the pages the workers share."""
    global _writer_role
    app.state.writes_in_process = False  # the writer process runs them
    app.add_middleware(RecycledConnections, seconds=KEEPALIVE_SECONDS)
    _writer_role = Path(tempfile.mkdtemp(prefix="policyqa-serve-")) / "writer-role.lock"
    gc.collect()
    gc.freeze()
    WorkerServer(app, host, port, workers).run()
