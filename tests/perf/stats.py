"""The one way benchmarks summarise latencies: nearest-rank percentiles."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0-100) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[k]


def p50_p99(values: Sequence[float]) -> tuple[float, float]:
    return percentile(values, 50), percentile(values, 99)


def line(values_ms: Sequence[float]) -> str:
    """``n=… p50=… ms p99=… ms`` for latencies in milliseconds."""
    p50, p99 = p50_p99(values_ms)
    return f"n={len(values_ms):<6} p50={p50:8.2f} ms  p99={p99:8.2f} ms"
