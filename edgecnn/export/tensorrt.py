"""TensorRT engines from the ONNX files (TensorRT 10 and 11 Python API).

Everything around the builder is plain Python (preflight, input ONNX choice, flags, optimization
profile, manifest fields) and is tested without a GPU; only ``build_engine`` needs ``tensorrt``.

- fp32: the float ONNX. fp16: TensorRT 10 sets BuilderFlag.FP16 on the float ONNX; TensorRT 11
  removed precision flags (networks are strongly typed), so it builds from an fp16 ONNX.
- int8-qat: explicit quantization from the QDQ ONNX of the QAT model. No calibrator: TensorRT 11
  removed implicit calibration. TensorRT 10 also sets INT8 (+ FP16 for the layers QDQ leaves float).
- Networks are explicit-batch by default since TensorRT 10: the removed EXPLICIT_BATCH flag is
  not passed. A fixed ``batch`` gives a one-shape profile; dynamic gives min 1 / opt / max.
An engine only runs on the GPU model and TensorRT version that built it: the manifest says which.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.export.errors import ExportError, ToolMissing
from edgecnn.fsutil import write_bytes

INSTALL_HINT = ("TensorRT engines are built on the machine that will run them, which needs an NVIDIA GPU with "
                "its driver and TensorRT: pip install edgecnn[trt] there. Here, export onnx (or openvino) instead.")
DEFAULT_OPT_BATCH = 64
DEFAULT_MAX_BATCH = 256
WORKSPACE_BYTES = 1 << 30


@dataclass(frozen=True)
class BuildPlan:
    precision: str
    onnx_kind: str                 # which intermediate ONNX to parse
    flags: tuple[str, ...]         # BuilderFlag names to set
    strongly_typed: bool
    profile: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)  # min/opt/max shapes


def trt_major(version: str) -> int:
    return int(str(version).split(".")[0])


def profile_shapes(input_size: int, batch: int | str | None = None, opt: int = DEFAULT_OPT_BATCH,
                   max_batch: int = DEFAULT_MAX_BATCH) -> dict[str, tuple[int, int, int, int]]:
    s = int(input_size)
    if isinstance(batch, int):
        if batch < 1:
            raise ExportError(f"--batch must be a positive integer or 'dynamic'; got {batch}")
        return {k: (batch, s, s, 3) for k in ("min", "opt", "max")}
    if batch not in (None, "dynamic"):
        raise ExportError(f"--batch must be a positive integer or 'dynamic'; got {batch!r}")
    opt = min(opt, max_batch)
    return {"min": (1, s, s, 3), "opt": (opt, s, s, 3), "max": (max_batch, s, s, 3)}


def plan_build(precision: str, trt_version: str, input_size: int, batch: int | str | None = None) -> BuildPlan:
    major = trt_major(trt_version)
    prof = profile_shapes(input_size, batch)
    if precision == "fp32":
        return BuildPlan("fp32", "fp32", (), major >= 11, prof)
    if precision == "fp16":
        if major >= 11:
            return BuildPlan("fp16", "fp16", (), True, prof)
        return BuildPlan("fp16", "fp32", ("FP16",), False, prof)
    if precision == "int8-qat":
        if major >= 11:
            return BuildPlan("int8-qat", "int8-qat", (), True, prof)
        return BuildPlan("int8-qat", "int8-qat", ("INT8", "FP16"), False, prof)
    raise ExportError(f"no TensorRT build for precision {precision!r}; choose fp32, fp16 or int8-qat")


def _gpu_names() -> list[str]:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def preflight() -> dict[str, Any]:
    """TensorRT version and GPU name, or ToolMissing naming everything that is missing (no work done yet)."""
    missing = []
    version = None
    try:
        import tensorrt as trt  # type: ignore[import-not-found]

        version = trt.__version__
    except ImportError:
        missing.append("the tensorrt Python package")
    gpus = _gpu_names()
    if not gpus:
        missing.append("an NVIDIA GPU with its driver (nvidia-smi finds none)")
    if missing:
        raise ToolMissing(f"cannot build TensorRT engines here: missing {' and '.join(missing)}. {INSTALL_HINT}")
    return {"tensorrt": version, "gpu": gpus[0], "gpus": gpus}


def build_engine(onnx_path: Path, plan: BuildPlan) -> bytes:
    """Parse the ONNX and build a serialized engine (needs tensorrt and a GPU)."""
    import tensorrt as trt  # type: ignore[import-not-found]

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if plan.strongly_typed and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED") \
            and trt_major(trt.__version__) < 11:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT could not parse {onnx_path.name}: {errs}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    for name in plan.flags:
        flag = getattr(trt.BuilderFlag, name, None)
        if flag is None:
            raise ExportError(f"TensorRT {trt.__version__} has no BuilderFlag.{name}; "
                              "this edgecnn does not know how to build that precision with it")
        config.set_flag(flag)
    profile = builder.create_optimization_profile()
    inp = network.get_input(0)
    profile.set_shape(inp.name, plan.profile["min"], plan.profile["opt"], plan.profile["max"])
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"TensorRT failed to build the {plan.precision} engine from {onnx_path.name} "
                          "(see the TensorRT log above)")
    return bytes(serialized)


def export_engine(ctx, spec, path: Path) -> dict[str, Any]:
    env = preflight()
    plan = plan_build(spec.precision, env["tensorrt"], ctx.input_size, ctx.batch)
    src = ctx.onnx_path(plan.onnx_kind)
    write_bytes(path, build_engine(src, plan))
    return engine_fields(plan, env)


def engine_fields(plan: BuildPlan, env: dict[str, Any]) -> dict[str, Any]:
    return {"io": "float", "tensorrt": {
        "version": env.get("tensorrt"), "gpu": env.get("gpu"), "source_onnx": plan.onnx_kind,
        "builder_flags": list(plan.flags), "strongly_typed": plan.strongly_typed,
        "profile": {k: list(v) for k, v in plan.profile.items()}, "workspace_bytes": WORKSPACE_BYTES,
        "note": "an engine runs only on this GPU model with this TensorRT version: rebuild it on the target"}}
