"""pytest-benchmark suites for the release model (exported/release, or $EDGECNN_RELEASE_DIR).

Run:  .venv/bin/python -m pytest benchmarks --benchmark-only
Not collected by `pytest tests` (pyproject's testpaths is tests/). Each artifact runs on every
installed runtime that can read it, with $EDGECNN_BENCH_THREADS threads (comma list, default 1).
Patches are real when $EDGECNN_DATA is set, else seeded random pixels (timing barely depends
on content; accuracy is `edgecnn bench`'s job).
"""

from __future__ import annotations

import os

import numpy as np
import pytest


def _targets() -> list:
    from edgecnn.bench import BenchError, discover_artifacts
    from edgecnn.paths import release_model_dir
    from edgecnn.runtime import runtime_available, runtimes_for

    d = release_model_dir()
    try:
        # The bench's own discovery: temp files of an interrupted export are never benchmarked.
        arts = discover_artifacts([d])
    except BenchError as e:
        return [pytest.param(None, marks=pytest.mark.skip(
            reason=f"no release model: {e} (or set EDGECNN_RELEASE_DIR)"))]
    threads = [int(t) for t in os.environ.get("EDGECNN_BENCH_THREADS", "1").split(",") if t.strip()]
    params = []
    for a in arts:
        for rt in runtimes_for(a):
            for t in threads:
                ident = f"{a.name}-{rt}-t{t}"
                if runtime_available(rt):
                    params.append(pytest.param((a, rt, t), id=ident))
                else:
                    params.append(pytest.param(None, id=ident, marks=pytest.mark.skip(reason=f"{rt} not installed")))
    return params


def pytest_generate_tests(metafunc):
    if "target" in metafunc.fixturenames:
        metafunc.parametrize("target", _targets(), indirect=True)


@pytest.fixture(scope="session")
def target(request):
    return request.param


@pytest.fixture(scope="session")
def backends():
    cache: dict = {}
    yield cache
    for b in cache.values():
        b.close()


@pytest.fixture
def backend(target, backends):
    from edgecnn.runtime import load

    if target not in backends:
        path, runtime, threads = target
        backends[target] = load(path, runtime=runtime, threads=threads)
    return backends[target]


@pytest.fixture(scope="session")
def patch_pool() -> np.ndarray:
    """Up to 256 real 50×50 patches, else seeded random pixels."""
    data = os.environ.get("EDGECNN_DATA")
    if data:
        from edgecnn.data import load_patches

        ps = load_patches(data)
        idx = np.random.default_rng(0).choice(len(ps), size=min(256, len(ps)), replace=False)
        return np.ascontiguousarray(ps.images[np.sort(idx)])
    return np.random.default_rng(0).integers(0, 256, size=(256, 50, 50, 3), dtype=np.uint8)


@pytest.fixture(scope="session")
def make_patches(patch_pool):
    """``make_patches(size, n)``: n patches at the model's input size (bilinear resize if needed)."""

    def make(size: int, n: int) -> np.ndarray:
        pool = patch_pool
        if pool.shape[1] != size:
            from PIL import Image

            pool = np.stack([np.asarray(Image.fromarray(p).resize((size, size), Image.BILINEAR)) for p in pool])
        reps = -(-n // len(pool))
        return np.ascontiguousarray(np.concatenate([pool] * reps)[:n])

    return make
