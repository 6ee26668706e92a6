from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import pytest

from ingest.pipeline import parse_file
from ingest.schema import ParsedFile

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "data" / "demo"
SHARED_CORPUS = REPO.parent / "shared" / "corpus"
LAWS = SHARED_CORPUS / "laws"

# TestClient sends `Host: testserver`: every app the tests build answers to it (api/security.py allow-list).
os.environ["POLICYQA_ALLOWED_HOSTS"] = "testserver"

SEEDS = {
    "000": DEMO / "000_9ad08608ccc3cd51.txt",
    "001": DEMO / "001_44f39c8b7c3ae9c1.txt",
    "002": DEMO / "002_d6057a83cdbdb456.txt",
    "003": DEMO / "003_ccbb22cb3a801d53.txt",
    "004": DEMO / "004_34cdbe798261bc22.txt",
}


@pytest.fixture(scope="session")
def seeds() -> dict[str, ParsedFile]:
    return {name: parse_file(path) for name, path in SEEDS.items()}


@pytest.fixture(scope="session")
def encoder():
    """The real default model, built once into data/models (gitignored) and reused across runs."""
    from embedding.encoder import load_encoder
    from policyqa.settings import Settings

    return load_encoder(Settings(models_dir=REPO / "data" / "models"))


@pytest.fixture(scope="session")
def demo_index_dir(tmp_path_factory, encoder):
    from ingest.pipeline import find_files, ingest_files
    from writes.commit import update_index

    index_dir = tmp_path_factory.mktemp("demo-index")
    result = ingest_files(list(find_files([DEMO])))
    update_index(index_dir, encoder, result.documents, result.clauses)
    return index_dir


@pytest.fixture(scope="session")
def demo_index(demo_index_dir, encoder):
    from index.clause_index import ClauseIndex

    return ClauseIndex.open(demo_index_dir, encoder)


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
def eval_index(eval_index_dir, encoder):
    from index.clause_index import ClauseIndex

    return ClauseIndex.open(eval_index_dir, encoder)


@pytest.fixture(scope="session")
def api_settings(tmp_path_factory, demo_index_dir):
    """Settings for a server over a private copy of the demo index (writes must not touch the shared one)."""
    import shutil

    from policyqa.settings import Settings

    root = tmp_path_factory.mktemp("api")
    shutil.copytree(demo_index_dir, root / "index")
    return Settings(index_dir=root / "index", upload_dir=root / "uploads", models_dir=REPO / "data" / "models")


@pytest.fixture(scope="session")
def api_client(api_settings, encoder):
    from fastapi.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(api_settings, encoder)) as client:
        yield client


@contextlib.contextmanager
def serving(app):
    """A real uvicorn server for the app on a free localhost port, in a thread of this process (so its memory
    is ours to read); yields its address."""
    import socket
    import time

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if time.time() > deadline:
            raise RuntimeError("the test server did not start within 30 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory, demo_index_dir, encoder):
    """A real server over its own copy of the demo index."""
    import shutil

    from api.app import create_app
    from policyqa.settings import Settings

    root = tmp_path_factory.mktemp("live")
    shutil.copytree(demo_index_dir, root / "index")
    settings = Settings(index_dir=root / "index", upload_dir=root / "uploads", models_dir=REPO / "data" / "models")
    with serving(create_app(settings, encoder)) as address:
        yield address


class GatedEncoder:
    """The real encoder, whose passage encoding waits for the test to open the gate."""

    def __init__(self, encoder) -> None:
        self._encoder = encoder
        self.model_id, self.dim = encoder.model_id, encoder.dim
        self.gate = threading.Event()
        self.entered = threading.Event()

    def encode_queries(self, texts):
        return self._encoder.encode_queries(texts)

    def encode_passages(self, texts):
        self.entered.set()
        assert self.gate.wait(120), "the test never opened the gate"
        return self._encoder.encode_passages(texts)


GATED_MAX_QUEUED = 8


@pytest.fixture
def gated_server(tmp_path, demo_index_dir, encoder):
    """A real server over a copy of the demo index whose writes wait at a gate inside their embedding step."""
    import shutil

    from api.app import create_app
    from policyqa.settings import Settings

    shutil.copytree(demo_index_dir, tmp_path / "index")
    gated = GatedEncoder(encoder)
    settings = Settings(index_dir=tmp_path / "index", upload_dir=tmp_path / "uploads", models_dir=REPO / "data" / "models",
                        max_queued_writes=GATED_MAX_QUEUED, write_wait_seconds=1)
    with serving(create_app(settings, gated)) as address:
        yield address, gated
        gated.gate.set()
