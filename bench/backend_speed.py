"""The local backend and Qdrant (its embedded local mode) side by side: ingest, queries, writes, quality.

    python bench/backend_speed.py [--sizes 10000 20000] [--json backends.json]

For each size, the first law documents of `data/bench-laws` (all of laws/, built by
bench/write_speed.py or `policyqa ingest ../shared/corpus/laws --index-dir data/bench-laws`) up to
that many clauses are written into an empty index of each backend in one write. Their vectors come
from the source index (an encoder that knows them), so "ingest" is the backend's own cost:
tokenising for BM25, building FAISS/segments or sending points. Embedding is the same for both
(bench/encoder_speed.py). Then 40 queries of eval/sets/policy.jsonl per mode (p50/p95, after one
warm-up pass), one new 4,000-character notice added with the real encoder, and one document removed.
Quality: `data/eval-index` (demo + laws/education, what policy.jsonl is labelled on; built if
missing) copied into Qdrant by `policyqa backend migrate`'s code, R@5 and MRR@10 per mode on both.
Qdrant's local mode is brute force in Python and warns above 20,000 points: it is the test double
for a Qdrant server, not a way to serve (docs/scale-out.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from backends.base import open_backend
from backends.migrate import migrate_to_qdrant
from embedding.encoder import load_encoder
from eval.dataset import load_queries
from eval.harness import evaluate_set
from eval.runner import local_searcher
from index.clause_index import ClauseIndex
from index.types import MODES
from ingest.pipeline import parse_file
from policyqa.settings import Settings
from writes.commit import embed_key

REPO = Path(__file__).resolve().parent.parent
LAWS = REPO.parent / "shared" / "corpus" / "laws"
MODELS = REPO / "data" / "models"
NOTICE = LAWS / "other"


class KnownVectors:
    """The real encoder for queries; passages it was given vectors for cost nothing."""

    def __init__(self, encoder, known: dict[str, np.ndarray]) -> None:
        self._encoder, self._known = encoder, known
        self.model_id, self.dim, self.variant = encoder.model_id, encoder.dim, encoder.variant

    def encode_queries(self, texts):
        return self._encoder.encode_queries(texts)

    def encode_passages(self, texts):
        return np.stack([self._known[embed_key(t)] for t in texts]) if texts else np.empty((0, self.dim), np.float32)


def known_vectors(index: ClauseIndex) -> dict[str, np.ndarray]:
    return {k.decode(): np.array(v) for s in index.segments
            for k, v in zip(s.embed_keys(), s.vectors(), strict=True)}


def first_documents(index: ClauseIndex, clauses: int):
    documents, chosen = [], []
    for doc in index.documents.values():
        if len(chosen) >= clauses:
            break
        documents.append(doc)
        chosen += index.document_clauses(doc.doc_id)
    return documents, chosen


def settings_for(backend: str, folder: Path) -> Settings:
    return Settings(backend=backend, index_dir=folder / "index", qdrant_path=folder / "qdrant", models_dir=MODELS,
                    upload_dir=folder / "uploads")


def timed(work) -> tuple[float, object]:
    start = time.perf_counter()
    result = work()
    return time.perf_counter() - start, result


def query_latency(index, queries: list[str]) -> dict[str, dict[str, float]]:
    out = {}
    for mode in MODES:
        for query in queries:  # warm-up: query vectors cached, pages read
            index.search(query, k=10, mode=mode)
        seconds = [timed(lambda q=query: index.search(q, k=10, mode=mode))[0] * 1000 for query in queries]
        out[mode] = {"p50_ms": statistics.median(seconds), "p95_ms": float(np.percentile(seconds, 95))}
    return out


def notice(indexed: set[str]):
    """A law file of 3,500-4,500 characters from laws/other that is not indexed yet: one new notice."""
    for path in sorted(NOTICE.glob("*.txt")):
        if 3500 <= len(path.read_text(encoding="utf-8")) <= 4500:
            parsed = parse_file(path)
            if not {d.doc_id for d in parsed.documents} & indexed:
                return parsed
    raise SystemExit("no law file of 3,500-4,500 characters left in laws/other to add")


def measure_size(source: ClauseIndex, encoder, size: int, queries: list[str], tmp: Path) -> dict:
    documents, clauses = first_documents(source, size)
    known = KnownVectors(encoder, known_vectors(source))
    parsed = notice({d.doc_id for d in documents})
    rows = {}
    for backend_name in ("local", "qdrant"):
        backend = open_backend(settings_for(backend_name, tmp / f"{backend_name}-{size}"))
        ingest_s, _ = timed(lambda b=backend: b.write(known, documents, clauses))
        index = backend.open(encoder)
        latency = query_latency(index, queries)
        add_s, _ = timed(lambda b=backend: b.write(encoder, parsed.documents, parsed.clauses))
        delete_s, _ = timed(lambda b=backend: b.write(encoder, [], [], remove_doc_ids={parsed.documents[0].doc_id}))
        rows[backend_name] = {"clauses": len(clauses), "ingest_s": ingest_s, "add_notice_s": add_s,
                              "delete_s": delete_s, **{f"{m}_{k}": v for m, d in latency.items() for k, v in d.items()}}
        print(size, backend_name, json.dumps(rows[backend_name]), flush=True)
        if backend_name == "qdrant":
            backend.client.close()
    return rows


def quality(encoder, tmp: Path) -> dict:
    index_dir = REPO / "data" / "eval-index"
    if not (index_dir / "CURRENT").is_file():
        subprocess.run([sys.executable, "-m", "policyqa", "ingest", str(REPO / "data" / "demo"), str(LAWS / "education"),
                        "--index-dir", str(index_dir)], cwd=REPO, check=True)
    queries = load_queries(REPO / "eval" / "sets" / "policy.jsonl")
    target = open_backend(settings_for("qdrant", tmp / "quality"))
    migrate_s, _ = timed(lambda: migrate_to_qdrant(index_dir, target))
    out = {"migrate_s": migrate_s}
    for name, index in (("local", ClauseIndex.open(index_dir, encoder)), ("qdrant", target.open(encoder))):
        report = evaluate_set("policy.jsonl", queries, local_searcher(index), list(MODES), k=10)
        out[name] = {m.mode: {k: m.overall[k] for k in ("recall@5", "mrr@10")} for m in report.modes}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=REPO / "data" / "bench-laws")
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 20_000])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="Local mode is not recommended")
    encoder = load_encoder(Settings(models_dir=MODELS))
    source = ClauseIndex.open(args.source, encoder)
    queries = [q.query for q in load_queries(REPO / "eval" / "sets" / "policy.jsonl")][:40]
    results = {}
    with tempfile.TemporaryDirectory(prefix="policyqa-backends-") as tmp:
        for size in args.sizes:
            results[str(size)] = measure_size(source, encoder, size, queries, Path(tmp))
        results["quality"] = quality(encoder, Path(tmp))
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
