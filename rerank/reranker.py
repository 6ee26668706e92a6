"""Rerankers: a cross-encoder reads a question with one passage and says how well the passage answers it.

The default is our own (data/reranker/, trained by training/train.py, assembled by rerank/assemble.py);
`POLICYQA_RERANKER` may name a local folder with another sequence-classification reranker instead (e.g.
bge-reranker-v2-m3), or `none`. Either runs exported to ONNX (int8 by default) through onnxruntime and
`tokenizers` alone: no torch in a server.
"""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import numpy as np

from embedding.encoder import DEFAULT_MODEL, concurrent_session_options, resolve_model
from embedding.onnx_export import ensure_onnx, is_cross_encoder
from policyqa.settings import Settings
from rerank.assemble import MANIFEST_FILE, build_default_reranker

DEFAULT_RERANKER = "default"
DEFAULT_RERANKER_DIRNAME = "policyqa-reranker"
MAX_TOKENS = 512  # for a reranker whose manifest does not say what it was trained on


class RerankerError(RuntimeError):
    """The configured reranker cannot be loaded (missing folder, not a reranker, failed export)."""


class Reranker(Protocol):
    name: str

    def score(self, query: str, passages: list[str]) -> np.ndarray:
        """Relevance of each passage to the query, in [0, 1]."""


class ProcessThread:
    """One thread per process that runs the calls handed to it, in turn (a forked child starts its own).

    A server's searches rerank on many request threads; run there, each thread's malloc arena kept the
    peak of its own inferences. 2 workers at 7k clauses, 50 users (bench/load.py, 2026-12-05): PSS
    2,734 MB on the request threads (2,141 MB with two malloc arenas), 1,631 MB on one thread, at 19.6
    and 19.8 req/s: the calls are CPU-bound on every core already (onnxruntime's own threads), so
    running them in turn costs no throughput.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._starting = threading.Lock()
        self._pid: int | None = None

    def run(self, call, *args):
        if self._pid != os.getpid():
            with self._starting:
                if self._pid != os.getpid():
                    self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._name)
                    self._pid = os.getpid()
        return self._executor.submit(call, *args).result()


class OnnxReranker:
    """A sequence classifier exported to ONNX; its one logit through a sigmoid is the relevance. `serial`
    (a server): every inference runs on one thread of the process (`ProcessThread`)."""

    def __init__(self, model_dir: Path, file_name: str, session_options=None, serial: bool = False) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        self.name = model_dir.name
        manifest = model_dir / MANIFEST_FILE
        trained = json.loads(manifest.read_text(encoding="utf-8"))["settings"] if manifest.is_file() else {}
        self.max_tokens = int(trained.get("max_tokens", MAX_TOKENS))
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(self.max_tokens, strategy="only_second")
        self._session = onnxruntime.InferenceSession(str(model_dir / file_name), sess_options=session_options,
                                                     providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._thread = ProcessThread("policyqa-reranker") if serial else None

    def _logits(self, inputs: list[dict[str, np.ndarray]]) -> np.ndarray:
        return np.array([self._session.run(None, feeds)[0][0, 0] for feeds in inputs], dtype=np.float32)

    def score(self, query: str, passages: list[str]) -> np.ndarray:
        """Each passage is read alone, so its score is the same whatever it is read with.

        int8 scales each call's activations by their range, padding included: batched, a passage's score
        moved with its companions (the 194 questions of eval/sets/answers.jsonl with their best 10 clauses
        at 7k: by 0.019 on average and up to 0.14 in batches of 16). Alone, with no padding, the calls
        also cost less: 90-99 ms of CPU per search on one thread vs 122 ms in batches of 16 (same run,
        2026-12-05)."""
        if not passages:
            return np.empty(0, dtype=np.float32)
        inputs = []
        for encoding in self._tokenizer.encode_batch([(query, passage) for passage in passages]):
            feeds = {"input_ids": np.array([encoding.ids], dtype=np.int64),
                     "attention_mask": np.array([encoding.attention_mask], dtype=np.int64)}
            if "token_type_ids" in self._inputs:
                feeds["token_type_ids"] = np.array([encoding.type_ids], dtype=np.int64)
            inputs.append(feeds)
        logits = self._thread.run(self._logits, inputs) if self._thread is not None else self._logits(inputs)
        return 1 / (1 + np.exp(-logits))


def reranker_dir(settings: Settings) -> Path | None:
    """The configured reranker's model directory (assembled first for the default), or None when it is off."""
    if settings.reranker == "none":
        return None
    if settings.reranker == DEFAULT_RERANKER:
        base, _ = resolve_model(DEFAULT_MODEL, settings.models_dir)
        return build_default_reranker(settings.models_dir / DEFAULT_RERANKER_DIRNAME, Path(base))
    folder = Path(settings.reranker).expanduser()
    if not folder.is_dir():
        raise RerankerError(f"POLICYQA_RERANKER is {settings.reranker!r}: not a folder, nor 'default' or 'none'")
    if not is_cross_encoder(folder):
        raise RerankerError(f"{folder} is not a reranker: its config.json names no *ForSequenceClassification "
                            "architecture (e.g. bge-reranker-v2-m3 names XLMRobertaForSequenceClassification)")
    return folder.resolve()


def load_reranker(settings: Settings, concurrent: bool = False) -> Reranker | None:
    """The configured reranker, exported to ONNX on first use; `concurrent` for a server (no spinning threads)."""
    folder = reranker_dir(settings)
    if folder is None:
        return None
    file_name = ensure_onnx(folder, settings.reranker_variant)
    # The arena keeps one call's peak, bounded by one pair of max_tokens; without it glibc kept more of the
    # calls' freed buffers (2 workers at 56k, batches of 16: 18.2 vs 21.0 req/s, PSS 1,677 vs 1,632 MB).
    # Two threads per call with 2 workers too: 27.3 vs 26.9 req/s on one (7k clauses, bench/load.py, same
    # run, 2026-12-05), and a lone search waits less.
    options = concurrent_session_options(arena=True) if concurrent else None
    return OnnxReranker(folder, file_name, options, serial=concurrent)
