"""Data loading speed: a cached ``load_patches`` of $EDGECNN_DATA (memory-mapped images, no PNG
decode). Target: well under 10 s for the 12k-patch folder on 2 cores, ~0.1 s typical. This was a
timed assert in tests/test_data_load.py, where a busy machine made it fail; the tests check that
the second load comes from the cache, this measures how fast that is.

Run:  EDGECNN_DATA=~/idc .venv/bin/python -m pytest benchmarks/test_data_load.py --benchmark-only
"""

from __future__ import annotations

import os

import pytest


def test_cached_load_patches(benchmark):
    path = os.environ.get("EDGECNN_DATA")
    if not path:
        pytest.skip("EDGECNN_DATA is not set: point it at a Kaggle-layout IDC folder")
    from edgecnn.data import load_patches

    load_patches(path)                      # decode once into the cache (not timed)
    ps = benchmark.pedantic(load_patches, args=(path,), rounds=5, iterations=1)
    assert ps.report["from_cache"] and len(ps) > 0
