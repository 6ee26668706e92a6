"""BM25 over jieba words + bigrams (bm25s): build, search with a filter mask, save, memory-mapped load."""

from __future__ import annotations

from pathlib import Path

import bm25s
import numpy as np


class LexicalIndex:
    def __init__(self, retriever: bm25s.BM25, size: int) -> None:
        self._retriever = retriever
        self.size = size

    @classmethod
    def build(cls, token_lists: list[list[str]]) -> LexicalIndex:
        retriever = bm25s.BM25()
        # An empty clause still needs a row, so every position lines up with the clause store; an
        # empty index (every document removed) keeps one placeholder row that `size` 0 never searches.
        rows = [tokens or ["\u2205"] for tokens in token_lists] or [["\u2205"]]
        retriever.index(rows, show_progress=False)
        return cls(retriever, len(token_lists))

    def search(self, tokens: list[str], k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Row indexes and BM25 scores, best first; rows scoring 0 (no shared term) are left out."""
        known = [t for t in tokens if t in self._retriever.vocab_dict]
        if not known or self.size == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        rows, scores = self._retriever.retrieve(
            [known],
            k=min(k, self.size),
            show_progress=False,
            n_threads=0,  # in the caller's thread: any other number starts a thread pool per query
            weight_mask=None if mask is None else mask.astype(np.float32),
        )
        rows, scores = rows[0].astype(np.int64), scores[0]
        keep = scores > 0
        return rows[keep], scores[keep]

    def save(self, folder: Path) -> None:
        self._retriever.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path, size: int) -> LexicalIndex:
        retriever = bm25s.BM25.load(str(folder), mmap=True, show_progress=False)
        # Plain arrays over the same mapped pages: a search slices them once per query term, and each slice
        # of a np.memmap builds another memmap object (a third of a lexical search's time, bench/load.py).
        retriever.scores = {name: value.view(np.ndarray) if isinstance(value, np.memmap) else value
                            for name, value in retriever.scores.items()}
        return cls(retriever, size)
