"""Small statistics helpers: percentiles and summaries of samples in seconds."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) of already sorted values, linearly interpolated."""
    if not sorted_values:
        return None
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    rank = (len(sorted_values) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    weight = rank - low
    return float(sorted_values[low] * (1 - weight) + sorted_values[high] * weight)


def summary_ms(samples_s: Iterable[float | None]) -> dict[str, Any]:
    """n, mean, p50, p95, p99 and max of samples given in seconds, in milliseconds."""
    values = sorted(1000 * v for v in samples_s if v is not None)
    if not values:
        return {"n": 0, "mean": None, "p50": None, "p95": None, "p99": None, "max": None}
    return {
        "n": len(values),
        "mean": round(sum(values) / len(values), 3),
        "p50": round(percentile(values, 50), 3),  # type: ignore[arg-type]
        "p95": round(percentile(values, 95), 3),  # type: ignore[arg-type]
        "p99": round(percentile(values, 99), 3),  # type: ignore[arg-type]
        "max": round(values[-1], 3),
    }


def ratio(value: float | None, floor: float | None) -> float | None:
    """value / floor, or None when either is missing or the floor is not positive."""
    if value is None or floor is None or floor <= 0:
        return None
    return round(value / floor, 3)
