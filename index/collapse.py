"""Collapsing the same clause re-issued by several documents into one hit that lists the others.

Two clauses are near-duplicates when the Jaccard similarity of their character 3-gram sets is at least
0.8. Comparing every pair of a search's ~50 candidates that way meant building each one's 3-gram set
(reading and parsing the clause first): at 56k clauses most of a search's collapse. So each clause also
has a MinHash sketch, written with its segment (`minhash.npy`): the share of equal entries of two
sketches estimates their Jaccard similarity, and only pairs whose estimate is near the threshold are
compared exactly. With 64 hashes a pair at 0.8 estimates below `LIKELY` (0.5) with probability ~1e-9,
so the verdicts are those of the exact comparison.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import TypeVar

import numpy as np

from ingest.normalize import compact

T = TypeVar("T")

NEAR_DUPLICATE_JACCARD = 0.8
LIKELY = 0.5
SKETCH_SIZE = 64
_SHINGLE = 3
# Multiply-shift hashes of a 3-gram's code points packed into 63 bits, keeping the high 32 bits of the
# product. Fixed seeds: a sketch written by the writer must match one computed in a server.
_MULTIPLIERS, _ADDENDS = np.random.default_rng(20261205).integers(1, 2**63, size=(2, SKETCH_SIZE, 1), dtype=np.uint64)
_MULTIPLIERS |= np.uint64(1)


# Popular clauses come back search after search: building a clause's shingles costs more than comparing.
@lru_cache(maxsize=4096)
def shingles(text: str) -> frozenset[str]:
    text = compact(text)
    if len(text) <= _SHINGLE:
        return frozenset([text])
    return frozenset(text[i : i + _SHINGLE] for i in range(len(text) - _SHINGLE + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    shared = len(a & b)
    return shared / (len(a) + len(b) - shared)


# The same clauses meet search after search (a query's phrasings share their candidates): remembering
# the verdicts made a search's collapse 3x cheaper on bench/load.py's mix (~150 bytes a pair, ~10 MB full).
@lru_cache(maxsize=1 << 16)
def near_duplicates(a: str, b: str, threshold: float = NEAR_DUPLICATE_JACCARD) -> bool:
    return jaccard(shingles(a), shingles(b)) >= threshold


def sketch(text: str) -> np.ndarray:
    """The MinHash sketch (SKETCH_SIZE uint32) of the 3-gram set `shingles` makes of `text`."""
    points = np.frombuffer(compact(text).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    if len(points) <= _SHINGLE:
        points = np.pad(points, (0, _SHINGLE - len(points)))
    grams = (points[:-2] << np.uint64(42)) | (points[1:-1] << np.uint64(21)) | points[2:]
    return ((grams * _MULTIPLIERS + _ADDENDS) >> np.uint64(32)).min(axis=1).astype(np.uint32)


def sketches(texts: Sequence[str]) -> np.ndarray:
    """One sketch per text, as rows of an (n, SKETCH_SIZE) uint32 array."""
    out = np.empty((len(texts), SKETCH_SIZE), dtype=np.uint32)
    for i, text in enumerate(texts):
        out[i] = sketch(text)
    return out


_cached_sketch = lru_cache(maxsize=4096)(sketch)


def collapse_duplicates(
    ranked: Sequence[T],
    text_of: Callable[[T], str],
    threshold: float = NEAR_DUPLICATE_JACCARD,
    limit: int | None = None,
    sketched: np.ndarray | None = None,
) -> list[tuple[T, list[T]]]:
    """Keep the best-ranked of each group of near-identical texts; the rest become its `also_in`.

    `sketched`: the items' sketches in order (computed from their texts when not given); a text is read
    only for a pair whose sketches agree enough. With `limit`, only the first `limit` groups are
    returned: once that many are kept, a later item is only compared with them.
    """
    if sketched is None:
        sketched = np.stack([_cached_sketch(text_of(item)) for item in ranked]) if ranked else np.empty((0, SKETCH_SIZE))
    agree = (sketched[:, None, :] == sketched[None, :, :]).mean(axis=2)
    earlier: dict[int, list[int]] = {}
    for i, j in zip(*np.nonzero(np.tril(agree >= LIKELY, -1)), strict=True):
        earlier.setdefault(int(i), []).append(int(j))
    groups: dict[int, list[T]] = {}
    for i, item in enumerate(ranked):
        home = next((j for j in earlier.get(i, ()) if j in groups
                     and near_duplicates(text_of(item), text_of(ranked[j]), threshold)), None)
        if home is not None:
            groups[home].append(item)
        elif limit is None or len(groups) < limit:
            groups[i] = []
    return [(ranked[i], others) for i, others in groups.items()]
