"""Batch-1 latency of the release model, per artifact × runtime (end to end from uint8 pixels)."""

from __future__ import annotations

import numpy as np

ROUNDS = 1000  # enough samples for a p99 that is not just the max
WARMUP = 50


def test_batch1_latency(benchmark, backend, make_patches):
    x = make_patches(backend.input_size, 1)
    benchmark.group = "batch-1 latency"
    benchmark.extra_info.update({k: v for k, v in backend.info().items() if k != "load_s"})
    p = benchmark.pedantic(backend.predict, args=(x,), kwargs={"batch_size": 1}, rounds=ROUNDS,
                           warmup_rounds=WARMUP, iterations=1)
    assert p.shape == (1,) and 0.0 <= float(p[0]) <= 1.0
    samples = np.asarray(benchmark.stats.stats.data) * 1000
    benchmark.extra_info["p99_ms"] = float(np.percentile(samples, 99))
