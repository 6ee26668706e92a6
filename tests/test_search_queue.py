"""A server process's searches: answered in the order they arrived, each with its own hits or its own error."""

from __future__ import annotations

import asyncio
import threading

import pytest

from api.search_queue import SearchQueue, SearchRequest
from backends.local import LocalBackend
from index.types import QueryError
from tests.conftest import HANG_S
from writes.overrides import Overrides
from writes.service import LiveIndex

QUERIES = ["班额标准", "农村寄宿生补助", "教师培训", "校车安全", "学前教育", "控辍保学", "生均公用经费", "随迁子女"]


@pytest.fixture
def live(demo_index_dir, encoder, tmp_path):
    return LiveIndex(LocalBackend(demo_index_dir), encoder, upload_dir=tmp_path / "uploads",
                     overrides=Overrides(tmp_path / "overrides.json"))


def request(query: str, k: int = 5, mode="lexical") -> SearchRequest:
    return SearchRequest(query, k, mode, None, rerank=False)


def test_searches_are_answered_in_the_order_they_arrived_each_with_its_own_hits(live, monkeypatch):
    index = live.index
    search, answered = index.search, []
    first_running, release = threading.Event(), threading.Event()

    def held_search(query, **options):
        if not answered and not first_running.is_set():  # hold the first search until every other one waits
            first_running.set()
            assert release.wait(HANG_S)
        hits = search(query, **options)
        answered.append(query)
        return hits

    monkeypatch.setattr(index, "search", held_search)
    searches = SearchQueue(live)

    async def all_at_once():
        first = asyncio.ensure_future(searches.search(request(QUERIES[0])))
        await asyncio.to_thread(first_running.wait, HANG_S)
        rest = [asyncio.ensure_future(searches.search(request(q))) for q in QUERIES[1:]]
        await asyncio.sleep(0)  # every other search handed over while the first is held
        release.set()
        return await asyncio.gather(first, *rest)

    try:
        results = asyncio.run(asyncio.wait_for(all_at_once(), HANG_S))
    finally:
        searches.stop()
    assert answered == QUERIES
    for query, hits in zip(QUERIES, results, strict=True):
        assert [h.clause.id for h in hits] == [h.clause.id for h in search(query, k=5, mode="lexical", rerank=False)]
        assert hits


def test_a_search_that_fails_reports_its_error_and_the_searches_behind_it_are_answered(live):
    searches = SearchQueue(live)

    async def three():
        return await asyncio.gather(searches.search(request("班额标准")), searches.search(request("   ", mode="hybrid")),
                                    searches.search(request("校车安全")), return_exceptions=True)

    try:
        before, failed, after = asyncio.run(asyncio.wait_for(three(), HANG_S))
    finally:
        searches.stop()
    assert isinstance(failed, QueryError) and "empty" in str(failed)
    assert before and after and before[0].clause.id != after[0].clause.id


def test_a_query_is_embedded_once_on_the_encoders_thread_before_its_search_runs(demo_index_dir, tmp_path):
    from embedding.encoder import load_encoder
    from policyqa.settings import Settings
    from tests.conftest import REPO

    encoder = load_encoder(Settings(models_dir=REPO / "data" / "models"), concurrent=True)
    embedded: list[str] = []
    encode = encoder.batcher._encode

    def counted(texts):
        embedded.extend(texts)
        return encode(texts)

    encoder.batcher._encode = counted
    live = LiveIndex(LocalBackend(demo_index_dir), encoder, upload_dir=tmp_path / "uploads",
                     overrides=Overrides(tmp_path / "overrides.json"))
    searches = SearchQueue(live)
    queries = ["班额标准", "農村寄宿生補助", "农村寄宿生补助", "教师培训"]  # the traditional one is the same query

    async def each_in_turn():
        return [await searches.search(request(q, mode="hybrid")) for q in queries]

    try:
        results = asyncio.run(asyncio.wait_for(each_in_turn(), HANG_S))
    finally:
        searches.stop()
    assert embedded == ["班额标准", "农村寄宿生补助", "教师培训"]
    assert all(results) and results[1][0].clause.id == results[2][0].clause.id
