"""OpenVINO IR (.xml + .bin) from the ONNX files: fp32 from the float ONNX, int8 from the QDQ ONNX.

OpenVINO's CPU plugin computes in bf16 by default on CPUs with AMX / AVX512-BF16 (this one has
them), which changes the numbers; the manifest records that default and edgecnn.runtime compiles
with INFERENCE_PRECISION_HINT=f32 unless asked otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgecnn.export.errors import ExportError, ToolMissing
from edgecnn.fsutil import remove_orphaned_temps, temp_beside

_SOURCE = {"fp32": "fp32", "int8-ptq": "int8-ptq"}


def _ov():
    try:
        import openvino as ov
    except ImportError:
        raise ToolMissing("OpenVINO export needs the openvino package: pip install edgecnn[openvino]") from None
    return ov


def cpu_default_precision() -> str:
    """What OpenVINO's CPU plugin computes in unless told (bf16 on CPUs with AVX512-BF16/AMX), for
    the manifest; the reason when it cannot be read."""
    try:
        hint = _ov().Core().get_property("CPU", "INFERENCE_PRECISION_HINT")
    except Exception as e:  # noqa: BLE001 — informational field: record why, never fail the export
        return f"unknown ({type(e).__name__}: {e})"[:200]
    return hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)


def save_ir(model, xml: Path) -> None:
    """Write .xml + .bin atomically: both go to temporaries first; the .xml is renamed last."""
    ov = _ov()
    remove_orphaned_temps(xml, ".bin")      # the .bin half of a killed writer's pair
    tmp_xml = temp_beside(xml, ".xml")
    tmp_bin = tmp_xml.with_suffix(".bin")
    try:
        # compress_to_fp16 defaults to True: it would silently turn the fp32 IR into fp16 weights.
        ov.save_model(model, str(tmp_xml), compress_to_fp16=False)
        os.replace(tmp_bin, xml.with_suffix(".bin"))
        os.replace(tmp_xml, xml)
    finally:
        for p in (tmp_xml, tmp_bin):
            if p.exists():
                p.unlink()


def export_openvino(ctx, spec, path: Path) -> dict[str, Any]:
    ov = _ov()
    if spec.precision not in _SOURCE:
        raise ExportError(f"no OpenVINO export for precision {spec.precision!r}")
    src = ctx.onnx_path(_SOURCE[spec.precision])
    try:
        model = ov.convert_model(str(src))
    except Exception as e:
        raise ExportError(f"openvino.convert_model failed on the {spec.precision} ONNX: {type(e).__name__}: {e}") from e
    save_ir(model, path)
    return {"io": "float", "source_onnx": spec.precision,
            "openvino": {"files": [path.name, path.with_suffix(".bin").name],
                         "cpu_default_inference_precision": cpu_default_precision(),
                         "runtime_inference_precision": "f32",
                         "note": "OpenVINO's CPU default here may be bf16; edgecnn.runtime compiles with "
                                 "INFERENCE_PRECISION_HINT=f32 (pass precision='bf16' to trade accuracy for speed)"}}
