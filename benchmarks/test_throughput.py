"""Batch-64 throughput of the release model, per artifact × runtime."""

from __future__ import annotations

BATCH = 64


def test_batch64_throughput(benchmark, backend, make_patches):
    x = make_patches(backend.input_size, BATCH)
    benchmark.group = f"batch-{BATCH} throughput"
    benchmark.extra_info.update({k: v for k, v in backend.info().items() if k != "load_s"})
    p = benchmark.pedantic(backend.predict, args=(x,), kwargs={"batch_size": BATCH}, rounds=30,
                           warmup_rounds=3, iterations=1)
    assert p.shape == (BATCH,) and ((p >= 0) & (p <= 1)).all()
    benchmark.extra_info["patches_per_s"] = BATCH / benchmark.stats.stats.mean
