"""TensorRT engines from the ONNX files (TensorRT 10 and 11 Python API).

Everything around the builder is plain Python (preflight, input ONNX choice, flags, optimization
profile, manifest fields) and is tested without a GPU; only ``build_engine`` needs ``tensorrt``.

- Every network is strongly typed: TensorRT 11 builds nothing else (STRONGLY_TYPED is accepted
  and ignored there), and TensorRT 10 takes the same creation flag (weak typing is deprecated
  since 10.12). So no precision builder flags are set on either: the ONNX carries the types.
- fp32: the float ONNX. fp16: an fp16 ONNX with float32 I/O (export/onnx.py to_fp16).
- int8: explicit quantization from ``<model>-int8-trt.onnx`` (symmetric INT8 Q/DQ, checked by
  edgecnn.export.trt_check before the parser sees it). No calibrator: TensorRT 11 removed them.
- Networks are explicit-batch by default since TensorRT 10: the removed EXPLICIT_BATCH flag is
  not passed. A fixed ``batch`` gives a one-shape profile; dynamic gives min 1 / opt / max.
An engine only runs on the GPU (compute capability) and TensorRT version that built it: the
manifest records both and edgecnn.runtime.tensorrt refuses an engine built for others.
"""

from __future__ import annotations

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
MIN_TRT_MAJOR = 10
ONNX_FOR = {"fp32": "fp32", "fp16": "fp16", "int8": "int8-trt"}   # engine precision → ONNX it is parsed from


@dataclass(frozen=True)
class BuildPlan:
    precision: str
    onnx_kind: str                 # which intermediate ONNX to parse
    strongly_typed: bool           # no precision builder flags exist for (or are set on) these networks
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
    if trt_major(trt_version) < MIN_TRT_MAJOR:
        raise ToolMissing(f"TensorRT {trt_version} is too old: edgecnn builds with the TensorRT 10/11 API "
                          "(pip install 'tensorrt>=10')")
    if precision not in ONNX_FOR:
        raise ExportError(f"no TensorRT build for precision {precision!r}; choose {', '.join(ONNX_FOR)}")
    return BuildPlan(precision, ONNX_FOR[precision], True, profile_shapes(input_size, batch))


def network_flags(plan: BuildPlan, creation_flags) -> int:
    """The create_network() bit mask: STRONGLY_TYPED when the plan asks for it and this TensorRT has it."""
    flag = getattr(creation_flags, "STRONGLY_TYPED", None)
    if plan.strongly_typed and flag is None:
        raise ToolMissing("this TensorRT has no NetworkDefinitionCreationFlag.STRONGLY_TYPED; install tensorrt>=10")
    return 1 << int(flag) if plan.strongly_typed else 0


def preflight() -> dict[str, Any]:
    """TensorRT version and the GPU (name, compute capability) from the CUDA driver itself, or
    ToolMissing naming everything that is missing. No nvidia-smi: Jetson boards have none."""
    from edgecnn.runtime.tensorrt import cuda_devices

    missing = []
    version = None
    try:
        import tensorrt as trt  # type: ignore[import-not-found]

        version = trt.__version__
    except ImportError:
        missing.append("the tensorrt Python package")
    gpus, why = cuda_devices()
    if not gpus:
        missing.append(f"an NVIDIA GPU with its driver ({why})")
    if missing:
        raise ToolMissing(f"cannot build TensorRT engines here: missing {' and '.join(missing)}. {INSTALL_HINT}")
    return {"tensorrt": version, "gpu": gpus[0]["name"], "compute_capability": gpus[0]["compute_capability"],
            "gpus": gpus}


def build_engine(onnx_path: Path, plan: BuildPlan) -> bytes:
    """Parse the ONNX and build a serialized engine (needs tensorrt and a GPU)."""
    import tensorrt as trt  # type: ignore[import-not-found]

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = network_flags(plan, trt.NetworkDefinitionCreationFlag)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT could not parse {onnx_path.name}: {errs}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
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
    if plan.onnx_kind == "int8-trt":
        from edgecnn.export.trt_check import check_trt_onnx

        rep = check_trt_onnx(src)
        if not rep.ok:
            raise ExportError(f"the int8 ONNX is not TensorRT-ready, no engine built:\n{rep.text()}")
    write_bytes(path, build_engine(src, plan))
    return engine_fields(plan, env)


def engine_fields(plan: BuildPlan, env: dict[str, Any]) -> dict[str, Any]:
    return {"io": "float", "tensorrt": {
        "version": env.get("tensorrt"), "gpu": env.get("gpu"), "compute_capability": env.get("compute_capability"),
        "source_onnx": plan.onnx_kind, "strongly_typed": plan.strongly_typed,
        "profile": {k: list(v) for k, v in plan.profile.items()}, "workspace_bytes": WORKSPACE_BYTES,
        "note": "an engine runs only on a GPU of this compute capability with this TensorRT version: rebuild it "
                "on the target"}}
