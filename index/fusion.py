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


def weighted_sum(first: dict, second: dict, first_weight: float) -> dict:
    """Convex combination of two min-max normalised score maps (dense and lexical scores; reranker and fused
    scores); a row missing from one map scores 0 there."""
    a, b = min_max(first), min_max(second)
    return {row: first_weight * a.get(row, 0.0) + (1 - first_weight) * b.get(row, 0.0) for row in a.keys() | b.keys()}
