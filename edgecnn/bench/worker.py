"""One bench row for one round, in a fresh interpreter: ``python -m edgecnn.bench.worker SPEC.json``.

Every row of every round starts a new process, so:
- its peak RSS is its own. It is read from the kernel's per-address-space high-water mark
  (``VmHWM``), not ``getrusage``: Linux carries ``ru_maxrss`` across ``exec`` from the process
  that spawned us, so a bench launched from a 1.5 GB TensorFlow process read 1.5 GB on every row;
- one runtime's thread pools and allocations never disturb the next row;
- rounds sample process-to-process variation (memory layout, thread placement), which one long
  run in one process hides;
- TensorFlow stays out of artifact rows (checked: ``tf_imported`` in the result).

The evaluation patches are read from the .npy in chunks, never whole, so the RSS is that of a
device serving the model (interpreter + runtime + model + one batch), not of the data set.
The parent writes the spec; this writes ``result.json`` (and ``probs.npy`` when asked) beside it.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from edgecnn.bench.latency import time_calls, measure_throughput
from edgecnn.fsutil import write_json

Predict = Callable[[np.ndarray, int], np.ndarray]


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return None


def rss_mb() -> float:
    now = _status_mb("VmRSS")
    if now is not None:
        return now
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        return float("nan")


def peak_rss_mb() -> tuple[float, str]:
    """(peak RSS in MB, how it was read). VmHWM belongs to this address space only."""
    hwm = _status_mb("VmHWM")
    if hwm is not None:
        return hwm, "VmHWM"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # No /proc (macOS): ru_maxrss, in bytes there; a spawned process starts clean on macOS.
    return (peak / 2**20 if sys.platform == "darwin" else peak / 2**10), "ru_maxrss"


# --- reading the patches without holding them all ----------------------------------------------

def _npy_header(f) -> tuple[tuple[int, ...], np.dtype]:
    fmt = np.lib.format
    version = fmt.read_magic(f)
    read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    shape, fortran, dtype = read(f)
    if fortran:
        raise ValueError("bench patches must be C-ordered")
    return shape, dtype


def iter_npy(path: str | Path, chunk: int) -> Iterator[np.ndarray]:
    """Consecutive (<= chunk, ...) blocks of a C-ordered .npy, read with plain file reads (no mmap,
    whose pages would count in the RSS)."""
    with open(path, "rb") as f:
        shape, dtype = _npy_header(f)
        per_item = int(np.prod(shape[1:], dtype=np.int64))
        for start in range(0, shape[0], chunk):
            n = min(chunk, shape[0] - start)
            block = np.fromfile(f, dtype=dtype, count=n * per_item)
            yield block.reshape((n, *shape[1:]))


def read_npy_head(path: str | Path, n: int) -> np.ndarray:
    return next(iter_npy(path, n))


# --- the model, loaded the way a user would -------------------------------------------------------

def open_artifact(spec: dict[str, Any]) -> tuple[Predict, Callable[[], None], dict[str, Any], float]:
    from edgecnn.runtime import load

    backend = load(spec["artifact"], runtime=spec["runtime"], threads=spec["threads"], verify=spec["verify"],
                   precision=spec.get("precision"), allow_no_manifest=spec["allow_no_manifest"])
    tta = bool(spec.get("tta"))
    return (lambda x, b: backend.predict(x, batch_size=b, tta=tta)), backend.close, backend.info(), backend.load_time_s


def open_keras(spec: dict[str, Any]) -> tuple[Predict, Callable[[], None], dict[str, Any], float]:
    """The float Keras model run the way the seed ran it: ``model.predict`` (also for one patch)."""
    t0 = time.perf_counter()
    from edgecnn.models.precision import load_float32
    from edgecnn.preprocess import to_float

    model = load_float32(spec["artifact"])
    info = {"input_size": int(model.input_shape[1]), "model_name": model.name}

    def predict(x: np.ndarray, b: int) -> np.ndarray:
        return np.asarray(model.predict(to_float(x), batch_size=b, verbose=0)[:, 1], dtype=np.float32)

    return predict, (lambda: None), info, time.perf_counter() - t0


# --- one round ---------------------------------------------------------------------------------

def _batch_of(pool: np.ndarray, b: int) -> np.ndarray:
    reps = -(-b // len(pool))
    return np.ascontiguousarray(np.concatenate([pool] * reps)[:b] if reps > 1 else pool[:b])


def score_all(predict: Predict, spec: dict[str, Any]) -> np.ndarray:
    big = max(spec["batches"])
    return np.concatenate([predict(np.ascontiguousarray(x), big) for x in iter_npy(spec["data"], 4 * big)])


def time_round(predict: Predict, spec: dict[str, Any]) -> dict[str, Any]:
    """This round's batch-1 latency samples and throughput per batch size."""
    pool = read_npy_head(spec["data"], max(spec["batches"]))
    singles = [np.ascontiguousarray(pool[i:i + 1]) for i in range(len(pool))]
    turn = iter(range(1 << 62))
    samples = time_calls(lambda: predict(singles[next(turn) % len(singles)], 1), runs=spec["runs"],
                         warmup=spec["warmup"], budget_s=spec["budget_s"], floor=spec["floor"])
    out: dict[str, Any] = {"latency_samples_ms": samples, "throughput": {}}
    for b in spec["batches"]:
        if b == 1:
            continue
        xb = _batch_of(pool, b)
        out["throughput"][str(b)] = measure_throughput(lambda: predict(xb, b), b, min_time_s=spec["throughput_s"])
    return out


def run_round(spec: dict[str, Any]) -> dict[str, Any]:
    rss0 = rss_mb()
    opener = open_keras if spec["kind"] == "keras" else open_artifact
    predict, close, info, load_s = opener(spec)
    result: dict[str, Any] = {"load_s": load_s, "model_rss_mb": rss_mb() - rss0, "info": info}
    if spec.get("probs_out"):
        np.save(spec["probs_out"], score_all(predict, spec).astype(np.float32))
    result.update(time_round(predict, spec))
    close()
    return result


def main(spec_path: str) -> int:
    spec_file = Path(spec_path)
    spec = json.loads(spec_file.read_text())
    try:
        if spec.get("cpus"):
            # Before any runtime is imported: thread pools size and place themselves from the affinity.
            os.sched_setaffinity(0, spec["cpus"])
        result = run_round(spec)
        result["cpus"] = sorted(os.sched_getaffinity(0)) if spec.get("cpus") else None
        result["error"] = None
    except Exception as e:  # the parent reports the row as failed, with the reason
        result = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    result["peak_rss_mb"], result["rss_method"] = peak_rss_mb()
    result["tf_imported"] = "tensorflow" in sys.modules
    write_json(spec_file.with_name("result.json"), result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
