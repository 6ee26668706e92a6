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
