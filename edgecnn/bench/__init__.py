"""Benchmark exported models: accuracy gate, latency, throughput, memory, size, load time.

``run_bench(...)`` is the library entry point (edgecnn.bench.harness); ``edgecnn bench`` wraps it.
No TensorFlow here (the optional Keras reference row imports it in its own process).
"""

from edgecnn.bench.harness import BenchError, apply_gate, discover_artifacts, load_eval_data, run_bench
from edgecnn.bench.latency import Latency, measure_latency, measure_throughput

__all__ = ["BenchError", "Latency", "apply_gate", "discover_artifacts", "load_eval_data", "measure_latency",
           "measure_throughput", "run_bench"]
