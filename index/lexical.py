"""BM25 over jieba words + bigrams, one inverted file per segment, scored with statistics of the whole index.

A segment stores postings (term -> rows, term frequencies) and row lengths; nothing depends on the
rest of the index, so adding documents writes a small segment and never re-tokenises the others.
IDF and the average length are computed at query time over the rows still live in every segment:
an index grown by writes scores exactly as one built from scratch over the same clauses.

Scores are bm25s's defaults, the "lucene" variant this index used through bm25s before segments
(k1 1.5, b 0.75): idf = ln(1 + (N - df + 0.5) / (df + 0.5)), tf part = tf / (tf + k1 (1 - b + b len / avglen)).
bm25s precomputes each (term, row) score with the IDF of its own corpus, which cannot be updated in
place; the arithmetic here is the same few lines, over the same arrays.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

K1 = 1.5
B = 0.75
FILES = ("vocab.json", "indptr.npy", "rows.npy", "tf.npy", "lengths.npy")


@dataclass
class LexicalSegment:
    """Postings of one segment: term i's rows are rows[indptr[i]:indptr[i + 1]], with their tf."""

    vocab: dict[str, int]
    indptr: np.ndarray  # int64, len(vocab) + 1
    rows: np.ndarray  # int32, sorted within a term
    tf: np.ndarray  # float32
    lengths: np.ndarray  # float32, tokens per row

    @property
    def size(self) -> int:
        return len(self.lengths)

    @classmethod
    def build(cls, token_lists: Sequence[Sequence[str]]) -> LexicalSegment:
        vocab: dict[str, int] = {}
        term_ids = [vocab.setdefault(t, len(vocab)) for tokens in token_lists for t in tokens]
        lengths = np.array([len(tokens) for tokens in token_lists], dtype=np.float32)
        row_of = np.repeat(np.arange(len(token_lists), dtype=np.int64), lengths.astype(np.int64))
        return cls.from_pairs(vocab, np.array(term_ids, dtype=np.int64), row_of, np.ones(len(term_ids), np.float32),
                              lengths)

    @classmethod
    def from_pairs(cls, vocab: dict[str, int], terms: np.ndarray, rows: np.ndarray, counts: np.ndarray,
                   lengths: np.ndarray) -> LexicalSegment:
        """Postings from (term, row, count) triples, summing the counts of repeated pairs."""
        key = terms * max(len(lengths), 1) + rows
        unique, inverse = np.unique(key, return_inverse=True)
        tf = np.bincount(inverse, weights=counts).astype(np.float32) if len(key) else np.empty(0, np.float32)
        pair_terms = unique // max(len(lengths), 1)
        indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.cumsum(np.bincount(pair_terms, minlength=len(vocab)), out=indptr[1:])
        return cls(vocab, indptr, (unique % max(len(lengths), 1)).astype(np.int32), tf, lengths.astype(np.float32))

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        i = self.vocab.get(term)
        if i is None:
            return None
        start, end = self.indptr[i], self.indptr[i + 1]
        return self.rows[start:end], self.tf[start:end]

    def terms(self) -> list[str]:
        """The vocabulary in term-id order."""
        return sorted(self.vocab, key=self.vocab.__getitem__)

    def triples(self) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """(terms, term id, row, tf) of every posting: what a merge re-reads."""
        terms = self.terms()
        term_of = np.repeat(np.arange(len(terms), dtype=np.int64), np.diff(self.indptr))
        return terms, term_of, np.asarray(self.rows, dtype=np.int64), np.asarray(self.tf)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "vocab.json").write_text(json.dumps(self.terms(), ensure_ascii=False), encoding="utf-8")
        for name in ("indptr", "rows", "tf", "lengths"):
            np.save(folder / f"{name}.npy", getattr(self, name))

    @classmethod
    def load(cls, folder: Path) -> LexicalSegment:
        terms = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        # Plain arrays over mapped pages: slicing a np.memmap builds another memmap object per term.
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r").view(np.ndarray)
                  for name in ("indptr", "rows", "tf", "lengths")}
        return cls({t: i for i, t in enumerate(terms)}, **arrays)


def idf(n: int, df: int) -> float:
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


class LexicalStats:
    """N, average row length and document frequencies over the live rows of several segments."""

    def __init__(self, segments: Sequence[tuple[LexicalSegment, np.ndarray | None]]) -> None:
        self.segments = list(segments)
        self.n = sum(int(seg.size if live is None else live.sum()) for seg, live in self.segments)
        total = sum(float(seg.lengths.sum() if live is None else seg.lengths[live].sum()) for seg, live in self.segments)
        self.avg_length = total / self.n if self.n else 1.0

    def df(self, postings: Sequence[tuple[np.ndarray, np.ndarray] | None]) -> int:
        count = 0
        for (_, live), found in zip(self.segments, postings, strict=True):
            if found is not None:
                count += len(found[0]) if live is None else int(live[found[0]].sum())
        return count

    def search(self, tokens: Sequence[str], k: int, allowed: Sequence[np.ndarray | None]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per segment: rows and BM25 scores (> 0), best first, at most k, among `allowed` rows (None: live rows)."""
        results = [(np.empty(0, np.int64), np.empty(0, np.float32)) for _ in self.segments]
        if self.n == 0:
            return results
        per_term = []
        for token in tokens:  # repeated query tokens count again, as in bm25s
            postings = [seg.postings(token) for seg, _ in self.segments]
            if any(p is not None for p in postings):
                per_term.append((postings, np.float32(idf(self.n, self.df(postings)))))
        if not per_term:
            return results
        for i, (seg, live) in enumerate(self.segments):
            scores = np.zeros(seg.size, dtype=np.float32)
            for postings, weight in per_term:
                if postings[i] is None:
                    continue
                rows, tf = postings[i]
                norm = np.float32(K1) * (np.float32(1 - B) + np.float32(B) * seg.lengths[rows] / np.float32(self.avg_length))
                scores[rows] += weight * tf / (tf + norm)
            mask = allowed[i] if allowed[i] is not None else live
            if mask is not None:
                scores[~mask] = 0
            candidates = np.flatnonzero(scores > 0)
            if len(candidates) > k:
                candidates = candidates[np.argpartition(-scores[candidates], k - 1)[:k]]
            order = candidates[np.lexsort((candidates, -scores[candidates]))]
            results[i] = (order.astype(np.int64), scores[order])
        return results
