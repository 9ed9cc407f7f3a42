"""One bench row, measured in a fresh process: ``python -m edgecnn.bench.worker SPEC.json``.

A fresh process per row makes the peak RSS that row's own (runtime library + model + the
evaluation patches + Python), keeps one runtime's thread pools from disturbing the next, and
keeps TensorFlow (the Keras reference row) out of the parent. The parent writes the spec
(JSON) and the patches (.npy); this writes ``result.json`` and ``probs.npy`` beside the spec.
"""

from __future__ import annotations

import json
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.bench.latency import measure_latency, measure_throughput
from edgecnn.fsutil import write_json


def _rss_mb() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        return float("nan")


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _batch_of(images: np.ndarray, b: int) -> np.ndarray:
    reps = -(-b // len(images))
    return np.concatenate([images] * reps)[:b] if reps > 1 else images[:b]


def _measure(predict_one, predict_batch, images: np.ndarray, spec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    lat = measure_latency(lambda: predict_one(images[:1]), runs=spec["runs"], warmup=spec["warmup"],
                          budget_s=spec["budget_s"])
    out["latency_ms"] = lat.as_dict()
    out["throughput"] = {}
    for b in spec["batches"]:
        if b == 1:
            out["throughput"]["1"] = 1000.0 / lat.mean
            continue
        xb = _batch_of(images, b)
        out["throughput"][str(b)] = measure_throughput(lambda: predict_batch(xb, b), b,
                                                       min_time_s=spec["throughput_s"])
    return out


def run_artifact(spec: dict[str, Any], images: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    from edgecnn.runtime import load

    rss0 = _rss_mb()
    backend = load(spec["artifact"], runtime=spec["runtime"], threads=spec["threads"], verify=spec["verify"],
                   precision=spec.get("precision"), allow_no_manifest=spec["allow_no_manifest"])
    result: dict[str, Any] = {"model_rss_mb": _rss_mb() - rss0, "load_s": backend.load_time_s,
                              "info": backend.info()}
    big = max(spec["batches"])
    probs = backend.predict(images, batch_size=big)
    result.update(_measure(lambda x: backend.predict(x, batch_size=1),
                           lambda x, b: backend.predict(x, batch_size=b), images, spec))
    backend.close()
    return result, probs


def run_keras(spec: dict[str, Any], images: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    """The float Keras model run the way the seed ran it: ``model.predict`` (also for one patch)."""
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    from edgecnn._tf import keras
    from edgecnn.preprocess import to_float

    model = keras.models.load_model(spec["artifact"], compile=False)
    result: dict[str, Any] = {"load_s": time.perf_counter() - t0, "model_rss_mb": _rss_mb() - rss0,
                              "info": {"input_size": int(model.input_shape[1]), "model_name": model.name}}
    big = max(spec["batches"])
    probs = model.predict(to_float(images), batch_size=big, verbose=0)[:, 1]
    result.update(_measure(lambda x: model.predict(to_float(x), verbose=0),
                           lambda x, b: model.predict(to_float(x), batch_size=b, verbose=0), images, spec))
    return result, np.asarray(probs, dtype=np.float32)


def main(spec_path: str) -> int:
    spec_file = Path(spec_path)
    spec = json.loads(spec_file.read_text())
    result: dict[str, Any]
    try:
        images = np.load(spec["data"])
        runner = run_keras if spec["kind"] == "keras" else run_artifact
        result, probs = runner(spec, images)
        np.save(spec_file.with_name("probs.npy"), np.asarray(probs, dtype=np.float32))
        result["error"] = None
    except Exception as e:  # the parent reports the row as failed, with the reason
        result = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    result["peak_rss_mb"] = _peak_rss_mb()
    write_json(spec_file.with_name("result.json"), result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
