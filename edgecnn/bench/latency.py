"""Latency statistics and the timing loops the bench uses (no TensorFlow)."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

# A p99 from fewer than 100 samples is the maximum in disguise: never stop earlier than this.
MIN_SAMPLES_FOR_P99 = 100


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


def measure_latency(fn: Callable[[], object], runs: int = 1000, warmup: int = 50,
                    budget_s: float | None = 20.0) -> Latency:
    """Time ``runs`` calls of ``fn`` after ``warmup`` untimed ones.

    ``budget_s`` caps the timed loop for slow models, but never below MIN_SAMPLES_FOR_P99 samples
    (or ``runs``, if smaller), so the p99 stays a percentile.
    """
    if runs < 1:
        raise ValueError(f"runs must be >= 1; got {runs}")
    for _ in range(max(0, warmup)):
        fn()
    floor = min(runs, MIN_SAMPLES_FOR_P99)
    deadline = time.perf_counter() + budget_s if budget_s else None
    samples = []
    clock = time.perf_counter_ns
    for _ in range(runs):
        t0 = clock()
        fn()
        samples.append((clock() - t0) / 1e6)
        if deadline is not None and len(samples) >= floor and time.perf_counter() > deadline:
            break
    return Latency.from_samples(samples)


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
