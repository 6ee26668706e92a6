"""Ingest + embed throughput, raw encode throughput, index size, peak memory and query latency.

    python bench/index_speed.py [--corpus ../shared/corpus/laws] [--encoder onnx-int8] [--synthetic 100000 1000000]
    python bench/index_speed.py --from-index data/index --synthetic 1000000   # scale only, from a built index

Everything is measured in one run so variants share the machine's state. Raw encode throughput is
measured twice: on a 300-clause sample before the ingest, and as the time the ingest itself spent
inside the encoder (same texts, same moment, so machine noise cancels out of the ratio). Latency is
warm, one query at a time, and includes embedding the query (the LRU query cache is bypassed by
using distinct queries per repetition).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from synthetic import NOISE, build_synthetic

from embedding.encoder import load_encoder
from index.clause_index import ClauseIndex
from index.clause_text import clause_input
from index.dense import DenseIndex, ivf_lists, kind_for
from ingest.pipeline import find_files, ingest_files
from policyqa.settings import Settings
from writes.commit import update_index

REPO = Path(__file__).resolve().parent.parent
QUERIES = ["班额标准", "小学一个班最多能有多少学生", "农村寄宿生补助多少钱", "生均公用经费标准是多少",
           "老师私下收费补课", "教师资格怎么认定", "学校安全事故责任", "校外培训机构管理",
           "义务教育经费保障", "学前教育入园", "职业教育校企合作", "学生体质健康测试"]


class TimedEncoder:
    """Wraps the encoder to add up the seconds spent encoding passages."""

    def __init__(self, encoder) -> None:
        self._encoder = encoder
        self.model_id, self.dim = encoder.model_id, encoder.dim
        self.seconds = 0.0

    def encode_queries(self, texts):
        return self._encoder.encode_queries(texts)

    def encode_passages(self, texts):
        start = time.perf_counter()
        try:
            return self._encoder.encode_passages(texts)
        finally:
            self.seconds += time.perf_counter() - start


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


_calls = iter(range(1, 10**6))


def latency(index: ClauseIndex, mode: str, reps: int = 3) -> tuple[float, float]:
    """p50/p95 ms; each call's queries are new texts, so none is answered from the query cache."""
    for q in QUERIES:  # warm: page in the memory-mapped files, start the encoder's threads, read the clauses
        index.search(f"预热{q}", k=10, mode=mode)
    times = []
    call = next(_calls)
    for rep in range(reps):
        for q in QUERIES:
            start = time.perf_counter()
            index.search(f"{q}{'？' * rep}{'。' * call}", k=10, mode=mode)
            times.append((time.perf_counter() - start) * 1000)
    q = statistics.quantiles(times, n=20)
    return statistics.median(times), q[18]


def recall(dense: DenseIndex, queries: np.ndarray, truth: list[set]) -> tuple[float, float]:
    """Recall@10 against exact search, and the search's p95 in ms."""
    times, found = [], []
    for vector, exact in zip(queries, truth, strict=True):
        t0 = time.perf_counter()
        rows = dense.search(vector, 10)[0]
        times.append((time.perf_counter() - t0) * 1000)
        found.append(len(set(rows) & exact) / 10)
    return statistics.mean(found), statistics.quantiles(times, n=20)[18]


def synthetic_scale(index: ClauseIndex, encoder, size: int, workdir: Path) -> None:
    """Queries at `size` clauses: real clause texts replicated, real vectors plus small noise (bench/synthetic.py)."""
    vectors = np.concatenate([s.vectors() for s in index.segments])
    reps = -(-size // len(vectors))
    rng = np.random.default_rng(0)
    big = np.tile(vectors, (reps, 1))[:size]
    big += rng.normal(0, NOISE, big.shape).astype(np.float32)
    big /= np.linalg.norm(big, axis=1, keepdims=True)
    queries = encoder.encode_queries([f"{q}{'？' * rep}" for rep in range(3) for q in QUERIES])
    dense = {}
    for kind in ("exact", "graph", "ivf"):
        start = time.perf_counter()
        dense[kind] = DenseIndex.build(big, kind=kind)
        built = time.perf_counter() - start
        path = workdir / f"dense-{size}-{kind}.faiss"
        dense[kind].save(path)
        times = []
        for vector in queries:
            t0 = time.perf_counter()
            dense[kind].search(vector, 10)
            times.append((time.perf_counter() - t0) * 1000)
        print(f"  FAISS {kind:5}: build {built:5.1f} s, {path.stat().st_size / size:.0f} bytes/clause "
              f"on disk, search alone p50 {statistics.median(times):.1f} ms p95 {statistics.quantiles(times, n=20)[18]:.1f} ms")
    truth = [set(dense["exact"].search(v, 10)[0]) for v in queries]
    found, p95 = recall(dense["graph"], queries, truth)
    print(f"  graph: recall@10 against exact {found:.3f}, search alone p95 {p95:.1f} ms")
    for nprobe in (64, 128, 256, 512):
        dense["ivf"].nprobe = nprobe
        found, p95 = recall(dense["ivf"], queries, truth)
        print(f"  IVF nprobe {nprobe:3} of {ivf_lists(size)} lists: recall@10 against exact {found:.3f}, "
              f"search alone p95 {p95:.1f} ms")
    folder = workdir / f"store-{size}"
    print(f"synthetic {size:,} clauses: index written in {build_synthetic(index, size, folder):.0f} s "
          f"(FAISS {kind_for(size)})")
    start = time.perf_counter()
    scaled = ClauseIndex.open(folder, encoder)
    print(f"  open (server start-up) of the {size:,}-clause index: {time.perf_counter() - start:.1f} s, "
          f"{folder_bytes(folder) / 1e6:,.0f} MB on disk")
    for mode in ("dense", "lexical", "hybrid"):
        p50, p95 = latency(scaled, mode)
        print(f"  {size:>9,} clauses  {mode:8} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus" / "laws" / "education")
    parser.add_argument("--encoder", default=None, help="torch, onnx or onnx-int8 (default: the setting's default)")
    parser.add_argument("--synthetic", type=int, nargs="*", default=[], help="also time queries at these sizes")
    parser.add_argument("--from-index", type=Path, help="skip the ingest: build the synthetic sizes from this index")
    args = parser.parse_args()
    settings = Settings(models_dir=REPO / "data" / "models")
    if args.encoder:
        settings = Settings(models_dir=REPO / "data" / "models", encoder=args.encoder)
    encoder = load_encoder(settings)
    if args.from_index:
        source = ClauseIndex.open(args.from_index, encoder)
        with tempfile.TemporaryDirectory() as tmp:
            for size in args.synthetic:
                synthetic_scale(source, encoder, size, Path(tmp))
        return
    start = time.perf_counter()
    parsed = ingest_files(list(find_files([args.corpus])))
    parse_seconds = time.perf_counter() - start
    inputs = [clause_input(c, True) for c in parsed.clauses]
    chars = sum(map(len, inputs))
    print(f"corpus {args.corpus}: {len(parsed.documents)} documents, {len(parsed.clauses)} clauses, {chars:,} chars; "
          f"encoder {settings.encoder}; parse {parse_seconds:.1f} s")

    sample = inputs[:: max(1, len(inputs) // 300)][:300]
    start = time.perf_counter()
    encoder.encode_passages(sample)
    raw = sum(map(len, sample)) / (time.perf_counter() - start)
    print(f"raw encode (300 clauses): {raw:,.0f} chars/s")

    with tempfile.TemporaryDirectory() as tmp:
        timed = TimedEncoder(encoder)
        start = time.perf_counter()
        update_index(Path(tmp), timed, parsed.documents, parsed.clauses)
        seconds = time.perf_counter() - start
        print(f"ingest (embed + index + commit): {seconds:.1f} s = {len(inputs) / seconds:.1f} clauses/s, "
              f"{chars / seconds:,.0f} chars/s ({100 * chars / seconds / raw:.0f}% of the sample's raw encode); "
              f"with parsing {parse_seconds + seconds:.0f} s")
        print(f"  of which encoding: {timed.seconds:.1f} s = {chars / timed.seconds:,.0f} chars/s; ingest runs at "
              f"{100 * timed.seconds / seconds:.1f}% of the encoder's own throughput on the same texts")
        index = ClauseIndex.open(Path(tmp), encoder)
        print(f"index on disk: {sum(folder_bytes(s.folder) for s in index.segments) / 1e6:.1f} MB")
        for mode in ("dense", "lexical", "hybrid"):
            p50, p95 = latency(index, mode)
            print(f"  {len(index.clauses):>9,} clauses  {mode:8} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms")
        print(f"peak RSS so far: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB", flush=True)
        for size in args.synthetic:
            synthetic_scale(index, encoder, size, Path(tmp))
            print(f"peak RSS so far: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB", flush=True)


if __name__ == "__main__":
    main()
