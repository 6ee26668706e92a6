from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from ingest.pipeline import parse_file
from ingest.schema import ParsedFile

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "data" / "demo"
SHARED_CORPUS = REPO.parent / "shared" / "corpus"
LAWS = SHARED_CORPUS / "laws"

# TestClient sends `Host: testserver`: every app the tests build answers to it (api/security.py allow-list).
os.environ["POLICYQA_ALLOWED_HOSTS"] = "testserver"

# A bound only a hang reaches. Tests wait on the event they need (a job's state, a file, a flag), never on
# how fast this machine is: the suite must pass on one core shared with a CPU hog.
HANG_S = 600.0

T = TypeVar("T")


def wait_until(condition: Callable[[], T], what: str, bound: float = HANG_S, every: float = 0.1) -> T:
    """Poll until `condition()` is truthy and return it; fail only when a hang is the explanation."""
    deadline = time.monotonic() + bound
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still not after {bound:.0f} s")
        time.sleep(every)
    return value


def follow_job(base_url: str, job: dict) -> dict:
    """A write job's status once it has ended (done or failed), however long it runs."""
    import httpx

    def ended() -> dict | None:
        status = httpx.get(base_url + job["status_url"], timeout=HANG_S).json()
        return None if status["state"] in ("queued", "running") else status

    return wait_until(ended, f"job {job['job_id']} to end", every=0.2)


SEEDS = {
    "000": DEMO / "000_9ad08608ccc3cd51.txt",
    "001": DEMO / "001_44f39c8b7c3ae9c1.txt",
    "002": DEMO / "002_d6057a83cdbdb456.txt",
    "003": DEMO / "003_ccbb22cb3a801d53.txt",
    "004": DEMO / "004_34cdbe798261bc22.txt",
}


# Tiers (`pytest -m "not model and not server and not browser"` is the fast part). A test is marked by the fixtures
# it uses, so a new test lands in the right tier by itself; one that starts a process of its own says so itself.
TIER_FIXTURES = {
    "model": {"encoder", "search_pipeline"},
    "server": {"live_server", "gated_server", "keyed_server", "messy_server", "stub_llm", "server_port"},
    "browser": {"page", "browser"},
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for tier, fixtures in TIER_FIXTURES.items():
            if used & fixtures:
                item.add_marker(tier)
        if item.get_closest_marker("server") and not item.get_closest_marker("model"):
            item.add_marker("model")  # every server here answers with the real model


@pytest.fixture(scope="session")
def seeds() -> dict[str, ParsedFile]:
    return {name: parse_file(path) for name, path in SEEDS.items()}


class SessionEmbeddings:
    """The real encoder, embedding each distinct passage once per test run.

    The suite indexes the same laws in several fixtures (the eval, answer and planning indexes share the
    education laws; uploads re-add them): the model's work is done once, every index still gets the real
    model's vectors. Queries go to the encoder as they are (it keeps its own cache)."""

    def __init__(self, encoder) -> None:
        self.uncached = encoder  # also for a test that compares vectors made in like batches
        self.model_id, self.dim = encoder.model_id, encoder.dim
        self._vectors: dict[str, object] = {}
        self._lock = threading.Lock()  # servers embed on their write threads

    def encode_queries(self, texts):
        return self.uncached.encode_queries(texts)

    def encode_passages(self, texts):
        import numpy as np

        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
            if missing:
                self._vectors.update(zip(missing, self.uncached.encode_passages(missing), strict=True))
            return np.stack([self._vectors[t] for t in texts]) if texts else self.uncached.encode_passages([])


@pytest.fixture(scope="session")
def encoder():
    """The real default model, built once into data/models (gitignored) and reused across runs."""
    from embedding.encoder import load_encoder
    from policyqa.settings import Settings

    return SessionEmbeddings(load_encoder(Settings(models_dir=REPO / "data" / "models")))


@pytest.fixture(scope="session")
def search_pipeline():
    """The configured search pipeline with the real reranker (assembled and exported once into data/models)."""
    from index.pipeline import SearchPipeline
    from policyqa.settings import Settings

    return SearchPipeline.from_settings(Settings(models_dir=REPO / "data" / "models"), concurrent=True)


@pytest.fixture(scope="session")
def demo_index_dir(tmp_path_factory, encoder):
    from ingest.pipeline import find_files, ingest_files
    from writes.commit import update_index

    index_dir = tmp_path_factory.mktemp("demo-index")
    result = ingest_files(list(find_files([DEMO])))
    update_index(index_dir, encoder, result.documents, result.clauses)
    return index_dir


@pytest.fixture(scope="session")
def demo_index(demo_index_dir, encoder, search_pipeline):
    from index.clause_index import ClauseIndex

    return ClauseIndex.open(demo_index_dir, encoder, pipeline=search_pipeline)


@pytest.fixture(scope="session")
def eval_index_dir(tmp_path_factory, encoder):
    """The demo corpus plus laws/education: what eval/sets/policy.jsonl is labelled on."""
    if not LAWS.is_dir():
        pytest.skip(f"laws corpus not found at {LAWS}")
    from ingest.pipeline import find_files, ingest_files
    from writes.commit import update_index

    index_dir = tmp_path_factory.mktemp("eval-index")
    result = ingest_files(list(find_files([DEMO, LAWS / "education"])))
    update_index(index_dir, encoder, result.documents, result.clauses)
    return index_dir


@pytest.fixture(scope="session")
def eval_index(eval_index_dir, encoder, search_pipeline):
    from index.clause_index import ClauseIndex

    return ClauseIndex.open(eval_index_dir, encoder, pipeline=search_pipeline)


@pytest.fixture(scope="session")
def api_settings(tmp_path_factory, demo_index_dir):
    """Settings for a server over a private copy of the demo index (writes must not touch the shared one)."""
    import shutil

    from policyqa.settings import Settings

    root = tmp_path_factory.mktemp("api")
    shutil.copytree(demo_index_dir, root / "index")
    return Settings(index_dir=root / "index", upload_dir=root / "uploads", models_dir=REPO / "data" / "models")


@pytest.fixture(scope="session")
def api_client(api_settings, encoder, search_pipeline):
    from fastapi.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(api_settings, encoder, search_pipeline)) as client:
        yield client


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_process(index_dir: Path, upload_dir: Path, port: int, log: Path | None = None, workers: int | None = None):
    """`policyqa serve` in a process of its own (what a user runs), once its index is ready; yields (url, process).

    `workers`: its --workers (default: one per core). It leads a process group of its own (`os.killpg` stops the
    whole server). Its output goes to `log` (a file: a pipe nobody reads would fill up and stall the server)."""
    import subprocess
    import sys

    import httpx

    env = {**os.environ, "POLICYQA_MODELS_DIR": str(REPO / "data" / "models"), "POLICYQA_UPLOAD_DIR": str(upload_dir)}
    with open(log or os.devnull, "w") as out:
        workers_option = ["--workers", str(workers)] if workers else []
        proc = subprocess.Popen([sys.executable, "-m", "policyqa", "serve", "--port", str(port), "--index-dir",
                                 str(index_dir), *workers_option], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, "policyqa serve exited early" + (f":\n{log.read_text()}" if log else "")
        try:
            return httpx.get(f"{url}/healthz", timeout=HANG_S).json()["index"] == "ready"
        except httpx.TransportError:
            return False

    try:
        wait_until(ready, "policyqa serve to be ready", every=0.5)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=HANG_S)


@contextlib.contextmanager
def serving(app):
    """A real uvicorn server for the app on a free localhost port, in a thread of this process (so its memory
    is ours to read); yields its address."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, "the test server to start", every=0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=HANG_S)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory, demo_index_dir, encoder, search_pipeline):
    """A real server over its own copy of the demo index."""
    import shutil

    from api.app import create_app
    from policyqa.settings import Settings

    root = tmp_path_factory.mktemp("live")
    shutil.copytree(demo_index_dir, root / "index")
    settings = Settings(index_dir=root / "index", upload_dir=root / "uploads", models_dir=REPO / "data" / "models")
    with serving(create_app(settings, encoder, search_pipeline)) as address:
        yield address


class GatedEncoder:
    """The real encoder, whose passage encoding waits for the test to open the gate."""

    def __init__(self, encoder) -> None:
        self.encoder = encoder
        self.model_id, self.dim = encoder.model_id, encoder.dim
        self.gate = threading.Event()
        self.entered = threading.Event()

    def encode_queries(self, texts):
        return self.encoder.encode_queries(texts)

    def encode_passages(self, texts):
        self.entered.set()
        assert self.gate.wait(HANG_S), "the test never opened the gate"
        return self.encoder.encode_passages(texts)


GATED_MAX_QUEUED = 8


@pytest.fixture
def gated_server(request, tmp_path, demo_index_dir, encoder, search_pipeline):
    """A real server over a copy of the demo index whose writes wait at a gate inside their embedding step.

    `?wait=true` waits for the job as long as the default server does; a test of the server giving up on a wait
    passes a shorter `write_wait_seconds` by indirect parametrisation (and keeps the gate shut meanwhile)."""
    import shutil

    from api.app import create_app
    from policyqa.settings import Settings

    shutil.copytree(demo_index_dir, tmp_path / "index")
    gated = GatedEncoder(encoder)
    settings = Settings(index_dir=tmp_path / "index", upload_dir=tmp_path / "uploads", models_dir=REPO / "data" / "models",
                        max_queued_writes=GATED_MAX_QUEUED, **getattr(request, "param", {}))
    with serving(create_app(settings, gated, search_pipeline)) as address:
        yield address, gated
        gated.gate.set()
