"""Percentiles, and product/baseline ratios of the figures the scenarios report."""

import math
from collections.abc import Sequence
from typing import Any


def percentile(ordered: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of an already sorted sequence (None when empty)."""
    if not ordered:
        return None
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_summary(samples: Sequence[float]) -> dict[str, float | None]:
    ordered = sorted(samples)
    return {
        "p50": percentile(ordered, 0.50),
        "p95": percentile(ordered, 0.95),
        "p99": percentile(ordered, 0.99),
        "max": ordered[-1] if ordered else None,
    }


def cdf_points(samples: Sequence[float], points: int = 101) -> list[float]:
    """The 0th to 100th percentiles (``points`` of them), enough to draw a CDF."""
    ordered = sorted(samples)
    if not ordered:
        return []
    return [ordered[min(len(ordered) - 1, round(i * (len(ordered) - 1) / (points - 1)))] for i in range(points)]


def ratios(product: dict[str, Any], baseline: dict[str, Any], prefix: str = "") -> dict[str, float | None]:
    """product/baseline for every number both report (nested keys joined with '.'); None when undefined."""
    out: dict[str, float | None] = {}
    for key, value in product.items():
        other = baseline.get(key)
        name = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(other, dict):
            out.update(ratios(value, other, prefix=f"{name}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and isinstance(other, (int, float)):
            out[name] = round(value / other, 3) if other else None
    return out


def side_by_side(product: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    return {"product": product, "baseline": baseline, "ratio": ratios(product, baseline)}
