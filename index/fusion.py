"""Fusing dense and lexical rankings. Each method a small pure function over {row: score} maps."""

from __future__ import annotations

RRF_K = 60


def rrf(rankings: list[list[int]], weights: list[float] | None = None, k: int = RRF_K) -> dict[int, float]:
    """Reciprocal rank fusion: sum of weight / (k + rank) over the lists a row appears in (rank from 1)."""
    weights = weights or [1.0] * len(rankings)
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, row in enumerate(ranking, start=1):
            fused[row] = fused.get(row, 0.0) + weight / (k + rank)
    return fused


def min_max(scores: dict[int, float]) -> dict[int, float]:
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    if high == low:
        return {row: 1.0 for row in scores}
    return {row: (s - low) / (high - low) for row, s in scores.items()}


def weighted_sum(dense: dict[int, float], lexical: dict[int, float], dense_weight: float) -> dict[int, float]:
    """Convex combination of min-max normalised scores; a row missing from one list scores 0 there."""
    d, lex = min_max(dense), min_max(lexical)
    return {
        row: dense_weight * d.get(row, 0.0) + (1 - dense_weight) * lex.get(row, 0.0) for row in d.keys() | lex.keys()
    }
