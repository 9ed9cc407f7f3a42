"""Training speed by compute precision: one VGG13 step (batch 64, 50 px, Adam) in float32 and in
bfloat16 (`edgecnn train --mixed-precision bf16`). Target: bfloat16 ≥ 1.3× faster on a CPU with
AMX or AVX512-BF16 (2 vCPU Intel Xeon with AMX: 1.02 s vs 0.51 s in one run, 1.10 s vs 0.66 s,
1.65×, interleaved in another); on other CPUs the ratio test is skipped, as bfloat16 there is
emulated and slower.

Run:  .venv/bin/python -m pytest benchmarks/test_train_step.py -s   (--benchmark-only skips the ratio test)
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest

POLICIES = ("float32", "mixed_bfloat16")


def _cpu_has_bf16() -> bool:
    from edgecnn.bench.machine import machine_info

    return bool({"amx_bf16", "avx512_bf16"} & set(machine_info()["isa"]))


def _step_fn(policy: str):
    """A compiled VGG13 train step under ``policy`` (the global policy is restored after building)."""
    from edgecnn._tf import keras
    from edgecnn.models.registry import create_model

    keras.mixed_precision.set_global_policy(policy)
    try:
        model = create_model("vgg13", input_size=50)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 50, 50, 3), dtype=np.float32), rng.integers(0, 2, 64)
    step = lambda: model.train_on_batch(x, y)  # noqa: E731
    step(), step()                      # build and trace outside the timing
    return step


@pytest.mark.parametrize("policy", POLICIES)
def test_vgg13_train_step(benchmark, policy):
    benchmark.pedantic(_step_fn(policy), rounds=5, iterations=1)


def test_bf16_speedup():
    if not _cpu_has_bf16():
        pytest.skip("this CPU has neither AMX nor AVX512-BF16: bfloat16 is not expected to be faster")
    steps = {p: _step_fn(p) for p in POLICIES}
    times = {p: [] for p in POLICIES}
    for _ in range(5):                  # interleaved: a busy machine slows both alike
        for p, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[p].append(time.perf_counter() - t0)
    ratio = statistics.median(times["float32"]) / statistics.median(times["mixed_bfloat16"])
    print(f"VGG13 step, batch 64: float32 {statistics.median(times['float32']):.3f} s, "
          f"bfloat16 {statistics.median(times['mixed_bfloat16']):.3f} s, ratio {ratio:.2f}")
    assert ratio >= 1.3, times
