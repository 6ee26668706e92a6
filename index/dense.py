"""Dense vectors in FAISS: inner product over L2-normalised embeddings (cosine).

Exact search (IndexFlatIP) up to APPROXIMATE_FROM vectors; above that an inverted-file index
(IndexIVFFlat) that visits NPROBE of its lists. Both from bench/index_speed.py on the laws corpus
replicated to 1M clauses: exact search costs 5.6 ms at 100k but 54-68 ms at 1M; IVF with 4000
lists and nprobe 512 costs 9.7 ms (p95) at recall@10 0.994 against exact search (256: 0.978,
128: 0.956). Both load memory-mapped.
"""

from __future__ import annotations

import math
from pathlib import Path

import faiss
import numpy as np

APPROXIMATE_FROM = 300_000
NPROBE = 512
TRAIN_SAMPLE = 100_000


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
        return "ivf" if isinstance(self._index, faiss.IndexIVF) else "exact"

    @classmethod
    def build(cls, vectors: np.ndarray, approximate: bool | None = None) -> DenseIndex:
        """`approximate` None: decided by size (exact below APPROXIMATE_FROM vectors)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dim = vectors.shape[1]
        if approximate is None:
            approximate = len(vectors) >= APPROXIMATE_FROM
        if not approximate:
            index = faiss.IndexFlatIP(dim)
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

        `every_list`: an IVF index visits all its lists (a filter may leave its rows in lists the
        probe would skip); rows masked out as deleted need no such care.
        """
        allowed = self.size if mask is None else int(mask.sum())
        k = min(k, allowed)
        if k <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        params = None
        if mask is not None and allowed < self.size:
            bits = np.packbits(mask, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bits))
            params = (faiss.SearchParametersIVF(sel=selector, nprobe=self._index.nlist if every_list else self._index.nprobe)
                      if self.kind == "ivf" else faiss.SearchParameters(sel=selector))
        if _threads_per_search is not None:
            faiss.omp_set_num_threads(_threads_per_search)
        scores, rows = self._index.search(np.asarray(vector, dtype=np.float32).reshape(1, -1), k, params=params)
        keep = rows[0] >= 0
        return rows[0][keep].astype(np.int64), scores[0][keep]

    def save(self, path: Path) -> None:
        faiss.write_index(self._index, str(path))

    @classmethod
    def load(cls, path: Path) -> DenseIndex:
        return cls(faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY))
