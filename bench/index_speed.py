"""Ingest + embed throughput, raw encode throughput, index size, peak memory and query latency.

    python bench/index_speed.py [--corpus ../shared/corpus/laws/education] [--synthetic 100000]

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

from index.clause_index import ClauseIndex, embedding_input, update_index
from index.dense import DenseIndex
from index.lexical import LexicalIndex
from index.tokenize import tokenize
from ingest.pipeline import find_files, ingest_files
from policyqa.settings import Settings, load_encoder

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


def latency(index: ClauseIndex, mode: str, reps: int = 3) -> tuple[float, float]:
    index.search("预热", k=10, mode=mode)
    times = []
    for rep in range(reps):
        for q in QUERIES:
            start = time.perf_counter()
            index.search(f"{q}{'？' * rep}", k=10, mode=mode)  # distinct text: no cache hit
            times.append((time.perf_counter() - start) * 1000)
    q = statistics.quantiles(times, n=20)
    return statistics.median(times), q[18]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus" / "laws" / "education")
    parser.add_argument("--synthetic", type=int, default=0, help="also time queries on an index of this many clauses")
    args = parser.parse_args()
    encoder = load_encoder(Settings(models_dir=REPO / "data" / "models"))
    parsed = ingest_files(list(find_files([args.corpus])))
    inputs = [embedding_input(c, True) for c in parsed.clauses]
    chars = sum(map(len, inputs))
    print(f"corpus {args.corpus}: {len(parsed.documents)} documents, {len(parsed.clauses)} clauses, {chars:,} chars")

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
              f"{chars / seconds:,.0f} chars/s ({100 * chars / seconds / raw:.0f}% of the sample's raw encode)")
        print(f"  of which encoding: {timed.seconds:.1f} s = {chars / timed.seconds:,.0f} chars/s; ingest runs at "
              f"{100 * timed.seconds / seconds:.1f}% of the encoder's own throughput on the same texts")
        version = next((Path(tmp) / "versions").iterdir())
        print(f"index on disk: {folder_bytes(version) / 1e6:.1f} MB")
        index = ClauseIndex.open(Path(tmp), encoder)
        for mode in ("dense", "lexical", "hybrid"):
            p50, p95 = latency(index, mode)
            print(f"  {len(index.clauses):>7} clauses  {mode:8} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms")

        if args.synthetic:
            vectors = np.load(version / "embeddings.npy")
            reps = -(-args.synthetic // len(vectors))
            rng = np.random.default_rng(0)
            big = np.tile(vectors, (reps, 1))[: args.synthetic]
            big = big + rng.normal(0, 0.01, big.shape).astype(np.float32)
            big /= np.linalg.norm(big, axis=1, keepdims=True)
            clauses = [c.model_copy(update={"id": f"{c.id}~syn{i}"}) for i in range(reps) for c in parsed.clauses]
            clauses = clauses[: args.synthetic]
            start = time.perf_counter()
            lexical = LexicalIndex.build([tokenize(c.norm_text) for c in clauses])
            built = time.perf_counter() - start
            synthetic = ClauseIndex(parsed.documents, clauses, DenseIndex.build(big), lexical, encoder, {})
            print(f"synthetic {len(clauses):,} clauses (lexical build {built:.0f} s):")
            for mode in ("dense", "lexical", "hybrid"):
                p50, p95 = latency(synthetic, mode)
                print(f"  {len(clauses):>7} clauses  {mode:8} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
