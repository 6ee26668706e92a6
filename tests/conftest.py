from __future__ import annotations

from pathlib import Path

import pytest

from ingest.pipeline import parse_file
from ingest.schema import ParsedFile

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "data" / "demo"
SHARED_CORPUS = REPO.parent / "shared" / "corpus"
LAWS = SHARED_CORPUS / "laws"

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
    from policyqa.settings import Settings, load_encoder

    return load_encoder(Settings(models_dir=REPO / "data" / "models"))


@pytest.fixture(scope="session")
def demo_index_dir(tmp_path_factory, encoder):
    from index.clause_index import update_index
    from ingest.pipeline import find_files, ingest_files

    index_dir = tmp_path_factory.mktemp("demo-index")
    result = ingest_files(list(find_files([DEMO])))
    update_index(index_dir, encoder, result.documents, result.clauses)
    return index_dir


@pytest.fixture(scope="session")
def demo_index(demo_index_dir, encoder):
    from index.clause_index import ClauseIndex

    return ClauseIndex.open(demo_index_dir, encoder)
