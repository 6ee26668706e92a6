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
    kept: list[tuple[T, frozenset[str], list[T]]] = []
    for item in ranked:
        item_shingles = shingles(text_of(item))
        for _, kept_shingles, others in kept:
            # |A∩B| / |A∪B| <= min/max of the sizes: most pairs are ruled out without a set operation.
            smaller, larger = sorted((len(item_shingles), len(kept_shingles)))
            if smaller < threshold * larger:
                continue
            if jaccard(item_shingles, kept_shingles) >= threshold:
                others.append(item)
                break
        else:
            if limit is None or len(kept) < limit:
                kept.append((item, item_shingles, []))
    return [(item, others) for item, _, others in kept]
