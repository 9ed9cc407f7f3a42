"""Arm Ethos-U NPUs: the QAT model as an integer-only TFLite (uint8 pixels in, int8 scores out),
compiled by Arm's Vela compiler (``pip install edgecnn[npu]``).

Vela maps every operator it supports to the NPU and leaves the rest to the microcontroller's CPU.
With float I/O the input QUANTIZE and output DEQUANTIZE stay on the CPU; with integer I/O the
whole graph can run on the NPU. The manifest records what Vela reports: the NPU's share of the
operators, SRAM and flash use, multiply-adds and the estimated time per tile at the NPU clock.

The compiled file holds Vela's ``ethos-u`` custom operator: it runs under TensorFlow Lite Micro
with the Ethos-U driver, not on a CPU. Its accuracy is measured on the integer TFLite Vela
compiled (same graph, same integer arithmetic), which is what ``metrics`` holds.
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from edgecnn.export.errors import ExportError, ToolMissing
from edgecnn.fsutil import write_bytes

ACCELERATOR = "ethos-u55-256"      # a common Cortex-M55 + Ethos-U55 pairing; Vela's other configs work too
INSTALL_HINT = "the vela format needs Arm's Vela compiler: pip install 'edgecnn[npu]' (ethos-u-vela)"
_OPS = re.compile(r"^(CPU|NPU) operators = (\d+) \(([\d.]+)%\)", re.MULTILINE)


def vela_executable() -> str:
    exe = Path(sys.executable).with_name("vela")
    found = str(exe) if exe.exists() else shutil.which("vela")
    if not found:
        raise ToolMissing(INSTALL_HINT)
    return found


def preflight() -> None:
    vela_executable()


def compile_vela(src: Path, dest: Path, accelerator: str = ACCELERATOR, workdir: Path | None = None) -> dict[str, Any]:
    """Run Vela on the integer TFLite ``src``; write the compiled model to ``dest``; return its report."""
    out_dir = Path(workdir or dest.parent) / f"vela-{src.stem}"
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [vela_executable(), str(src), "--accelerator-config", accelerator, "--output-dir", str(out_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise ExportError(f"Vela failed on {src.name} (exit {proc.returncode}): {(proc.stderr or proc.stdout)[-800:]}")
    compiled = out_dir / f"{src.stem}_vela.tflite"
    summaries = sorted(out_dir.glob(f"{src.stem}_summary_*.csv"))
    if not compiled.exists() or not summaries:
        raise ExportError(f"Vela wrote no compiled model or summary for {src.name} in {out_dir}; its output: "
                          f"{proc.stdout[-800:]}")
    write_bytes(dest, compiled.read_bytes())
    return parse_report(proc.stdout, summaries[0], accelerator)


def parse_report(stdout: str, summary_csv: Path, accelerator: str) -> dict[str, Any]:
    """The manifest's ``vela`` section from Vela's printed summary and its CSV."""
    ops = {kind: (int(n), float(share) / 100) for kind, n, share in _OPS.findall(stdout)}
    if "NPU" not in ops:
        raise ExportError(f"Vela's summary has no operator counts (format changed?): {stdout[-400:]}")
    with open(summary_csv, newline="") as f:
        row = next(csv.DictReader(f))
    npu, cpu = ops["NPU"][0], ops.get("CPU", (0, 0.0))[0]
    return {
        "accelerator": accelerator, "system_config": row.get("system_config"),
        "clock_mhz": float(row["core_clock"]) / 1e6,
        "npu_operators": npu, "cpu_operators": cpu, "npu_op_share": npu / (npu + cpu) if npu + cpu else 0.0,
        "sram_kib": float(row["sram_memory_used"]), "flash_kib": float(row["off_chip_flash_memory_used"]),
        "macs_per_tile": int(float(row["nn_macs"])),
        "ms_per_tile": 1000 * float(row["inference_time"]), "cycles_per_tile": int(float(row["cycles_total"])),
        "tool": "ethos-u-vela",
    }


def export_vela(ctx, spec, path: Path) -> dict[str, Any]:
    from edgecnn.export.manifests import build_manifest
    from edgecnn.export.tflite import convert_keras, inspect_ops, io_details
    from edgecnn.formats import get_format
    from edgecnn.manifest import write_manifest

    # Batch 1: a microcontroller classifies one tile at a time, and Vela needs fixed shapes.
    content = convert_keras(ctx.qat_model(), "int8-qat", io="uint8-int8", input_size=ctx.input_size, batch=1)
    ops = inspect_ops(content)
    src = ctx.workdir / f"{ctx.model_name}-int8-qat-uint8-int8.tflite"
    write_bytes(src, content)
    details = io_details(content)
    source_spec = get_format("tflite", "int8-qat")
    write_manifest(src, build_manifest(ctx, source_spec, {"io": "uint8-int8", **details, "ops": ops["ops"]}))
    report = compile_vela(src, path, workdir=ctx.workdir)
    return {"io": "uint8-int8", **details, "ops": ops["ops"], "integer_only": ops["integer_only"],
            "vela": report, "check_with": str(src),
            "runs_on": "Arm Ethos-U NPU: TensorFlow Lite Micro with the Ethos-U driver (not a CPU runtime)"}
