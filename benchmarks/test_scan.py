"""A 1920×1080 field of view (798 non-overlapping 50-px tiles, all tissue) scanned with the release
int8 model, against the seed's way: float Keras `model.predict` on the same 798 tiles.

Targets (issue 5): the int8 scan ≤ 100 ms a frame on 2 cores, and ≥ 20× faster than the seed's way,
measured in the same run. The ratio is stored in the int8 case's extra_info and printed.

Needs real patches ($EDGECNN_DATA) to build a frame of tissue, and the release model.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from edgecnn.paths import release_model_dir

ROWS, COLS, TILE = 21, 38, 50   # 1080 // 50, 1920 // 50 → 798 tiles
_results: dict = {}


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    data = os.environ.get("EDGECNN_DATA")
    if not data:
        pytest.skip("EDGECNN_DATA is not set: the frame is built from real tissue patches")
    from edgecnn.data import load_patches

    ps = load_patches(data)
    idx = np.sort(np.random.default_rng(0).choice(len(ps), ROWS * COLS, replace=False))
    tiles = np.asarray(ps.images[idx]).reshape(ROWS, COLS, TILE, TILE, 3)
    img = np.full((1080, 1920, 3), 255, np.uint8)
    img[:ROWS * TILE, :COLS * TILE] = tiles.transpose(0, 2, 1, 3, 4).reshape(ROWS * TILE, COLS * TILE, 3)
    return img


def _release(name: str):
    p = release_model_dir() / name
    if not p.exists():
        pytest.skip(f"no {p}: build the release model (make release)")
    return p


def test_scan_1080p_int8(benchmark, frame):
    from edgecnn.scan import Scanner

    threads = int(os.environ.get("EDGECNN_SCAN_THREADS", "2"))
    scanner = Scanner(_release("basic_cnn-int8-qat.tflite"), threads=threads)
    res = scanner.scan(frame)
    assert res.tiles == ROWS * COLS and res.tissue_tiles == ROWS * COLS
    benchmark.group = "1080p frame scan"
    benchmark.pedantic(scanner.scan, args=(frame,), rounds=30, warmup_rounds=3, iterations=1)
    _results["int8"] = benchmark.stats.stats.median
    benchmark.extra_info.update(threads=threads, tiles=res.tiles, ms_per_frame_median=_results["int8"] * 1e3)


def test_seed_way_keras_predict(benchmark, frame):
    """The seed's inference: float Keras model.predict over the same tiles."""
    from edgecnn._tf import keras
    from edgecnn.preprocess import to_float

    model = keras.models.load_model(_release("basic_cnn-fp32.keras"), compile=False)
    tiles = frame[:ROWS * TILE, :COLS * TILE].reshape(ROWS, TILE, COLS, TILE, 3).transpose(0, 2, 1, 3, 4)
    x = to_float(tiles.reshape(-1, TILE, TILE, 3))
    benchmark.group = "1080p frame scan"
    benchmark.pedantic(model.predict, args=(x,), kwargs={"verbose": 0}, rounds=5, warmup_rounds=1, iterations=1)
    _results["keras"] = benchmark.stats.stats.median
    if "int8" in _results:
        ratio = _results["keras"] / _results["int8"]
        benchmark.extra_info["speedup_int8_scan_vs_keras"] = ratio
        print(f"\nint8 scan {_results['int8'] * 1e3:.1f} ms/frame; Keras predict {_results['keras'] * 1e3:.1f} ms; "
              f"{ratio:.1f}x faster")
