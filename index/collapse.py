"""Collapsing the same clause re-issued by several documents into one hit that lists the others."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import TypeVar

from ingest.normalize import compact

T = TypeVar("T")

NEAR_DUPLICATE_JACCARD = 0.8
_SHINGLE = 3


# Every search collapses its ~50 candidates, and popular clauses come back search after search:
# building a clause's shingles costs more than the rest of the collapse. ~16 KB each (~65 MB full).
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


def collapse_duplicates(
    ranked: Sequence[T],
    text_of: Callable[[T], str],
    threshold: float = NEAR_DUPLICATE_JACCARD,
    limit: int | None = None,
) -> list[tuple[T, list[T]]]:
    """Keep the best-ranked of each group of near-identical texts; the rest become its `also_in`.

    With `limit`, only the first `limit` groups are returned: once that many are kept, a later item
    is only compared with them (whatever it would have started is cut anyway).
    """
    kept: list[tuple[T, str, int, list[T]]] = []
    for item in ranked:
        text = text_of(item)
        size = len(shingles(text))
        for _, kept_text, kept_size, others in kept:
            # |A∩B| / |A∪B| <= min/max of the sizes: most pairs are ruled out without a set operation.
            if size < threshold * kept_size or kept_size < threshold * size:
                continue
            if near_duplicates(text, kept_text, threshold):
                others.append(item)
                break
        else:
            if limit is None or len(kept) < limit:
                kept.append((item, text, size, []))
    return [(item, others) for item, _, _, others in kept]
