"""What machine a benchmark ran on: numbers mean little without the CPU, its ISA and the versions."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

# ISA features that decide which kernels the runtimes pick (int8 dot products, bf16, AMX, NEON).
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
             "avx512vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16", "asimd", "asimddp",
             "sve", "i8mm", "bf16")
PACKAGES = ("edgecnn", "numpy", "ai-edge-litert", "tflite-runtime", "onnxruntime", "onnxruntime-gpu", "openvino",
            "tensorrt", "tensorflow", "tf-keras", "psutil")


def _cpuinfo() -> tuple[str, set[str]]:
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("model name", "hardware", "cpu model") and not model:
                    model = value.strip()
                elif key in ("flags", "features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model or platform.processor() or platform.machine(), flags


def versions() -> dict[str, str]:
    """Installed versions (from package metadata: nothing is imported, TensorFlow included)."""
    out = {}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def machine_info() -> dict[str, Any]:
    model, flags = _cpuinfo()
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
        mem_gb = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        physical, mem_gb = None, None
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    return {
        "cpu": model,
        "arch": platform.machine(),
        "logical_cores": os.cpu_count(),
        "physical_cores": physical,
        "usable_cores": affinity,
        "memory_gb": mem_gb,
        "isa": sorted(f for f in ISA_FLAGS if f in flags),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions(),
    }
