"""Latency statistics, the timing loops, and the summary of interleaved rounds (no TensorFlow)."""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np

# A p99 from fewer than 100 samples is the maximum in disguise: never stop earlier than this.
MIN_SAMPLES_FOR_P99 = 100
# pyperf's rule of thumb: a spread above 10 % means the numbers are not to be trusted as they are.
SPREAD_WARN_PCT = 10.0


@dataclass(frozen=True)
class Latency:
    """Per-call latency in milliseconds."""

    p50: float
    p90: float
    p99: float
    mean: float
    stdev: float
    min: float
    max: float
    n: int

    @classmethod
    def from_samples(cls, samples_ms) -> "Latency":
        s = np.asarray(list(samples_ms), dtype=np.float64)
        if s.size == 0:
            raise ValueError("no latency samples")
        p50, p90, p99 = np.percentile(s, [50, 90, 99])
        return cls(p50=float(p50), p90=float(p90), p99=float(p99), mean=float(s.mean()),
                   stdev=float(statistics.stdev(s)) if s.size > 1 else 0.0,
                   min=float(s.min()), max=float(s.max()), n=int(s.size))

    def as_dict(self) -> dict:
        return asdict(self)


def time_calls(fn: Callable[[], object], runs: int, warmup: int = 50, budget_s: float | None = 20.0,
               floor: int = MIN_SAMPLES_FOR_P99) -> list[float]:
    """Milliseconds of up to ``runs`` calls of ``fn`` after ``warmup`` untimed ones.

    ``budget_s`` stops a slow model early, but never before ``floor`` samples (or ``runs``).
    """
    if runs < 1:
        raise ValueError(f"runs must be >= 1; got {runs}")
    for _ in range(max(0, warmup)):
        fn()
    floor = min(runs, floor)
    deadline = time.perf_counter() + budget_s if budget_s else None
    samples = []
    clock = time.perf_counter_ns
    for _ in range(runs):
        t0 = clock()
        fn()
        samples.append((clock() - t0) / 1e6)
        if deadline is not None and len(samples) >= floor and time.perf_counter() > deadline:
            break
    return samples


def measure_latency(fn: Callable[[], object], runs: int = 1000, warmup: int = 50,
                    budget_s: float | None = 20.0) -> Latency:
    """Latency of ``runs`` calls (see time_calls); at least MIN_SAMPLES_FOR_P99 unless runs is smaller."""
    return Latency.from_samples(time_calls(fn, runs, warmup, budget_s))


def measure_throughput(fn: Callable[[], object], items_per_call: int, min_time_s: float = 1.0,
                       min_calls: int = 3, max_calls: int = 10_000) -> float:
    """Items per second over at least ``min_calls`` calls and ``min_time_s`` seconds (one warm-up call)."""
    fn()
    calls = 0
    t0 = time.perf_counter()
    while calls < max_calls:
        fn()
        calls += 1
        if calls >= min_calls and time.perf_counter() - t0 >= min_time_s:
            break
    return items_per_call * calls / (time.perf_counter() - t0)


def spread_pct(values: Sequence[float]) -> float | None:
    """Half the range of ``values`` as a percentage of their median (±x %); None for fewer than 2."""
    v = [float(x) for x in values if x is not None and math.isfinite(x)]
    if len(v) < 2:
        return None
    mid = statistics.median(v)
    return 100.0 * (max(v) - min(v)) / 2.0 / mid if mid > 0 else None


def summarize_rounds(rounds_ms: Sequence[Sequence[float]]) -> dict[str, Any]:
    """Latency over interleaved rounds (one fresh process each).

    ``p50`` is the median of the round medians: one round disturbed by a neighbour on the CPU
    moves it little, unlike the pooled median of a single long run. ``p50_spread_pct`` is the
    half-range of the round medians (±x %). p90/p99/mean/min/max come from all samples pooled,
    since a tail needs many samples.
    """
    rounds = [list(r) for r in rounds_ms if len(r)]
    if not rounds:
        raise ValueError("no latency samples")
    medians = [float(np.median(r)) for r in rounds]
    pooled = Latency.from_samples([s for r in rounds for s in r]).as_dict()
    pooled["p50_pooled"] = pooled["p50"]
    pooled["p50"] = float(statistics.median(medians))
    pooled["p50_rounds"] = medians
    pooled["p50_spread_pct"] = spread_pct(medians)
    pooled["rounds"] = len(rounds)
    return pooled


def noisy(latency: dict[str, Any] | None, limit: float = SPREAD_WARN_PCT) -> bool:
    s = (latency or {}).get("p50_spread_pct")
    return s is not None and s > limit
