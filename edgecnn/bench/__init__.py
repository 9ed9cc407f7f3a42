"""Benchmark exported models: accuracy gate, latency, throughput, memory, size, load time.

``run_bench(...)`` is the library entry point (edgecnn.bench.harness); ``edgecnn bench`` wraps it.
No TensorFlow here (the optional Keras reference row imports it in its own process).

The names below load on first use (PEP 562): the scanner imports ``edgecnn.bench.latency`` alone,
and must not pull in the harness, the data loader and the gate with it.
"""

from importlib import import_module
from typing import Any

_WHERE = {
    "BenchError": "data", "load_eval_data": "data",
    "discover_artifacts": "discover", "is_temp_file": "discover",
    "apply_gate": "gate", "pick_reference": "gate",
    "run_bench": "harness",
    "Latency": "latency", "measure_latency": "latency", "measure_throughput": "latency", "summarize_rounds": "latency",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'edgecnn.bench' has no attribute {name!r}")
    return getattr(import_module(f"edgecnn.bench.{_WHERE[name]}"), name)
