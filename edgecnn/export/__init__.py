"""Export a trained run to TFLite, ONNX, OpenVINO and TensorRT (driven by edgecnn.formats).
Imports TensorFlow (conversions start from the Keras models)."""

from edgecnn.export.api import ExportResults, default_out, export_run, select_specs
from edgecnn.export.errors import ExportError, ToolMissing

__all__ = ["ExportError", "ExportResults", "ToolMissing", "default_out", "export_run", "select_specs"]
