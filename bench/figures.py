"""Percentiles, and product/baseline and product/ceiling ratios of the figures the scenarios report."""

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


def ratios(product: dict[str, Any], other: dict[str, Any], prefix: str = "") -> dict[str, float | None]:
    """product/other for every number both report (nested keys joined with '.'); None when undefined."""
    out: dict[str, float | None] = {}
    for key, value in product.items():
        theirs = other.get(key)
        name = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(theirs, dict):
            out.update(ratios(value, theirs, prefix=f"{name}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and isinstance(theirs, (int, float)):
            out[name] = round(value / theirs, 3) if theirs else None
    return out


def side_by_side(
    product: dict[str, Any], baseline: dict[str, Any], ceiling: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A case: each server's figures, ``ratio`` (product/baseline) and, with a ceiling, ``ratio_to_ceiling``."""
    case = {"product": product, "baseline": baseline, "ratio": ratios(product, baseline)}
    if ceiling is not None:
        case["ceiling"] = ceiling
        case["ratio_to_ceiling"] = ratios(product, ceiling)
    return case
