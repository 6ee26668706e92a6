"""A server process's searches, answered in the order they arrived on one thread, their queries embedded ahead.

Run on FastAPI's thread pool, a process's concurrent searches took turns at the interpreter lock at random:
under load one search waited for a few others and the next for dozens, so a worker's p95 was 1.7x its
p50. In arrival order each waits for those ahead of it alone (bench/load.py, 2 workers, 50 users, 7k clauses,
rerank off, 2026-12-05: one search thread p95 268 ms vs 318-384 ms on the pool). A search's query is embedded
before it joins the queue, by the encoder's own thread together with the queries of the searches arriving
meanwhile (embedding.encoder.QueryBatcher), so the model's work overlaps the searches' and the search finds
its vector in the encoder's cache. The event loop hands the query to that thread and awaits it: waiting on
a thread of the pool instead cost a hop per search (same run, 2 workers at 7k: 283-326 vs 342-349 req/s).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from dataclasses import dataclass

from index.pipeline import query_vector_ahead
from index.types import Filters, Hit, Mode
from writes.service import LiveIndex


@dataclass(frozen=True)
class SearchRequest:
    query: str
    k: int
    mode: Mode
    filters: Filters | None
    rerank: bool


class SearchQueue:
    def __init__(self, live: LiveIndex) -> None:
        self._live = live
        self._waiting: queue.SimpleQueue[tuple[SearchRequest, asyncio.Future] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="policyqa-searches", daemon=True)
        self._thread.start()

    async def search(self, request: SearchRequest) -> list[Hit]:
        """The hits of `request` once the searches ahead of it are done; what the search raises is raised here."""
        embedding = query_vector_ahead(self._live.encoder, request.query.strip()) if request.mode != "lexical" else None
        if embedding is not None:
            with contextlib.suppress(Exception):  # the search embeds the query again and reports what fails
                await asyncio.wrap_future(embedding)
        answer = asyncio.get_running_loop().create_future()
        self._waiting.put((request, answer))
        return await answer

    def stop(self) -> None:
        """Finish the searches already waiting, then end the thread."""
        self._waiting.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (item := self._waiting.get()) is not None:
            request, answer = item
            try:
                hits = self._live.index.search(request.query, k=request.k, mode=request.mode,
                                               filters=request.filters, rerank=request.rerank)
            except Exception as exc:  # noqa: BLE001 - the search's caller reports it
                _settle(answer, exception=exc)
            else:
                _settle(answer, result=hits)


def _settle(answer: asyncio.Future, result=None, exception: BaseException | None = None) -> None:
    """Hand a search's outcome to its waiting request on that request's event loop."""

    def settle() -> None:
        if answer.done():  # the client went away and the request was cancelled
            return
        if exception is not None:
            answer.set_exception(exception)
        else:
            answer.set_result(result)

    try:
        answer.get_loop().call_soon_threadsafe(settle)
    except RuntimeError:  # that loop has closed: the server is stopping and nobody waits
        pass
