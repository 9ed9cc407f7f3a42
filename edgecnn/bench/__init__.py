"""Benchmark exported models: accuracy gate, latency, throughput, memory, size, load time.

``run_bench(...)`` is the library entry point (edgecnn.bench.harness); ``edgecnn bench`` wraps it.
No TensorFlow here (the optional Keras reference row imports it in its own process).
"""

from edgecnn.bench.data import BenchError, load_eval_data
from edgecnn.bench.discover import discover_artifacts, is_temp_file
from edgecnn.bench.gate import apply_gate, pick_reference
from edgecnn.bench.harness import run_bench
from edgecnn.bench.latency import Latency, measure_latency, measure_throughput, summarize_rounds

__all__ = ["BenchError", "Latency", "apply_gate", "discover_artifacts", "is_temp_file", "load_eval_data",
           "measure_latency", "measure_throughput", "pick_reference", "run_bench", "summarize_rounds"]
