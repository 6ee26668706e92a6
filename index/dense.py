"""Dense vectors in FAISS: inner product over L2-normalised embeddings (cosine).

Exact search (IndexFlatIP) below GRAPH_FROM vectors; from there a graph (IndexHNSWFlat); from
APPROXIMATE_FROM an inverted-file index (IndexIVFFlat) that visits NPROBE of its lists. IVF from
bench/index_speed.py on the laws corpus replicated to 1M clauses: exact search costs 5.6 ms at 100k but
54-68 ms at 1M; IVF with 4000 lists and nprobe 512 costs 9.7 ms (p95) at recall@10 0.994 against exact
search (256: 0.978, 128: 0.956). The graph for the sizes between: see GRAPH_FROM. A search a filter narrows
(a document, an issuer) is exact over the rows it allows on a graph, which might not reach them.
"""

from __future__ import annotations

import math
from pathlib import Path

import faiss
import numpy as np

APPROXIMATE_FROM = 300_000
NPROBE = 512
TRAIN_SAMPLE = 100_000
# From 20,000 vectors a graph. At 56k clauses (demo + laws + messy, 351 eval queries, one thread, 2026-12-05)
# exact search costs 3.0 ms of CPU a query, most of a server's search beside the model; the graph (built in 7 s)
# 0.15 / 0.24 / 0.44 ms at efSearch 64 / 128 / 256, finding 0.87 / 0.94 / 0.975 of exact search's 50 candidates
# (0.94 / 0.97 / 0.99 of its 10 best). Retrieval on eval/sets/answers.jsonl, all 194 questions (`policyqa eval
# --no-answers`, the index copied with its segment rebuilt as a graph) at 256 vs exact: hybrid, what is served,
# R@1 0.541 vs 0.541, R@10 0.894 vs 0.894, MRR@10 0.686 vs 0.687; dense alone R@10 0.856 vs 0.869 (~2 questions).
GRAPH_FROM = 20_000
GRAPH_NEIGHBOURS = 32  # HNSW's M
GRAPH_BUILD_DEPTH = 80  # efConstruction
GRAPH_SEARCH_DEPTH = 256  # efSearch


_threads_per_search: int | None = None  # None: OpenMP's default (one per core)


def search_on_one_thread() -> None:
    """FAISS searches on the calling thread alone (a server: its concurrent searches and processes use the
    cores). With OpenMP's threads, which spin waiting for work, a search at 56k clauses cost 26.0 ms of
    CPU, 10.6 ms on one thread (in process, bench/load.py's query mix, rerank off, 2026-12-05); at 7k
    6.7-7.0 vs 7.0-7.5 ms, within the noise. OpenMP keeps the setting per thread, so each search sets it
    on the thread it runs on (a server's searches run on a pool of threads)."""
    global _threads_per_search
    _threads_per_search = 1


def ivf_lists(n: int) -> int:
    """About 4 * sqrt(n) lists, the usual FAISS guidance for a million-scale index."""
    return max(64, int(4 * math.sqrt(n)))


def kind_for(n: int) -> str:
    """The FAISS index a segment of `n` vectors is built as."""
    return "ivf" if n >= APPROXIMATE_FROM else "graph" if n >= GRAPH_FROM else "exact"


class DenseIndex:
    def __init__(self, index: faiss.Index) -> None:
        self._index = index
        if isinstance(index, faiss.IndexIVF):
            index.nprobe = NPROBE

    @property
    def size(self) -> int:
        return self._index.ntotal

    @property
    def nprobe(self) -> int | None:
        return self._index.nprobe if self.kind == "ivf" else None

    @nprobe.setter
    def nprobe(self, lists: int) -> None:
        self._index.nprobe = lists

    @property
    def kind(self) -> str:
        if isinstance(self._index, faiss.IndexIVF):
            return "ivf"
        return "graph" if isinstance(self._index, faiss.IndexHNSW) else "exact"

    @classmethod
    def build(cls, vectors: np.ndarray, kind: str | None = None) -> DenseIndex:
        """`kind` "exact", "graph" or "ivf"; None: decided by size (GRAPH_FROM, APPROXIMATE_FROM)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dim = vectors.shape[1]
        kind = kind or kind_for(len(vectors))
        if kind == "exact":
            index = faiss.IndexFlatIP(dim)
        elif kind == "graph":
            index = faiss.IndexHNSWFlat(dim, GRAPH_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = GRAPH_BUILD_DEPTH
        else:
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, ivf_lists(len(vectors)), faiss.METRIC_INNER_PRODUCT)
            sample = np.random.default_rng(0).choice(len(vectors), min(len(vectors), TRAIN_SAMPLE), replace=False)
            index.train(vectors[np.sort(sample)])
        if len(vectors):
            index.add(vectors)
        return cls(index)

    def search(self, vector: np.ndarray, k: int, mask: np.ndarray | None = None,
               every_list: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Row indexes and cosine scores, best first, among the rows `mask` (bool per row) allows.

        `every_list`: a filter may leave its rows where the search would not look: an IVF index visits
        all its lists, a graph is searched exactly; rows masked out as deleted need no such care.
        """
        allowed = self.size if mask is None else int(mask.sum())
        k = min(k, allowed)
        if k <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        index, kind = self._index, self.kind
        if kind == "graph" and every_list and mask is not None:
            index, kind = faiss.downcast_index(self._index.storage), "exact"
        params = faiss.SearchParametersHNSW(efSearch=max(GRAPH_SEARCH_DEPTH, k)) if kind == "graph" else None
        if mask is not None and allowed < self.size:
            bits = np.packbits(mask, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bits))
            if kind == "ivf":
                params = faiss.SearchParametersIVF(sel=selector, nprobe=index.nlist if every_list else index.nprobe)
            elif kind == "graph":
                params.sel = selector
            else:
                params = faiss.SearchParameters(sel=selector)
        if _threads_per_search is not None:
            faiss.omp_set_num_threads(_threads_per_search)
        scores, rows = index.search(np.asarray(vector, dtype=np.float32).reshape(1, -1), k, params=params)
        keep = rows[0] >= 0
        return rows[0][keep].astype(np.int64), scores[0][keep]

    def save(self, path: Path) -> None:
        faiss.write_index(self._index, str(path))

    @classmethod
    def load(cls, path: Path) -> DenseIndex:
        return cls(faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY))
