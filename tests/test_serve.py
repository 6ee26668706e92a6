"""`policyqa serve` on an empty index directory: ingests the demo corpus, then answers over HTTP."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import HANG_S, free_port, serve_process

pytestmark = [pytest.mark.server, pytest.mark.model]


def test_serve_ingests_the_demo_corpus_when_there_is_no_index(tmp_path):
    with serve_process(tmp_path / "index", tmp_path / "up", free_port(), log=tmp_path / "serve.log") as (url, _):
        body = httpx.get(f"{url}/api/search", params={"q": "班额标准", "k": 3}, timeout=HANG_S).json()
        assert "小学班额不超过45人" in body["results"][0]["text"]
        assert httpx.get(f"{url}/api/stats").json()["documents"] == 12
        page = httpx.get(f"{url}/")
        assert page.status_code == 200 and "<html" in page.text.lower()
    assert (tmp_path / "index" / "CURRENT").is_file()
