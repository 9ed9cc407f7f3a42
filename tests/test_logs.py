"""TensorFlow's and LiteRT's own log lines stay off the terminal unless --verbose; ours stay.

Each check runs the real command in a fresh process and reads its real stderr (fd 2): the noise
is written by native code, which no in-process capture of sys.stderr sees.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgecnn.logfilter import is_noise

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / "exported" / "release"
EDGECNN = [sys.executable, "-c", "from edgecnn.cli import app; app()"]
# What the noise looks like, whatever its exact format in the next TensorFlow release.
TELLTALES = ("absl::InitializeLog", "oneDNN", "cudart", "cuInit", "XNNPACK", "cpu_feature_guard", "port.cc")


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k not in ("EDGECNN_VERBOSE", "EDGECNN_NO_LOG_FILTER",
                                                          "TF_CPP_MIN_LOG_LEVEL")}
    e.update(env)
    return subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=e, timeout=600)


def _noise(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if any(t in line for t in TELLTALES) or is_noise(line.encode())]


@pytest.mark.parametrize("line,noise", [
    ("I0000 00:00:1795661671.178335    5413 port.cc:153] oneDNN custom operations are on.", True),
    ("E0000 00:00:1795661674.445550    5413 cuda_platform.cc:52] failed call to cuInit: INTERNAL", True),
    ("W0000 00:00:1795661912.369278   14795 tf_tfl_flatbuffer_helpers.cc:364] Ignored output_format.", True),
    ("2025-09-17 14:44:05.157831: I external/local_xla/xla/tsl/cuda/cudart_stub.cc:32] Could not find cuda", True),
    ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR", True),
    ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.", True),
    ("fully_quantize: 0, inference_type: 6, input_inference_type: FLOAT32, output_inference_type: FLOAT32", True),
    ("warning: data/x.png: not a PNG (skipped)", False),
    ("error: runs/basic: no such run folder", False),
    ("I0000 is a patient id, not a log line", False),
    # Errors and fatals of any other source stay visible.
    ("E0000 00:00:1795661674.445550    5413 op_kernel.cc:1857] OP_REQUIRES failed: out of memory", False),
    ("F0000 00:00:1795661674.445550    5413 check.cc:12] Check failed: ptr != nullptr", False),
    ("2025-09-17 14:44:05.157831: E external/xla/service.cc:32] Internal: failed", False),
])
def test_only_library_log_formats_count_as_noise(line, noise):
    assert is_noise(line.encode()) is noise


FILTER_SCRIPT = """
import os, sys
from edgecnn import logfilter
if sys.argv[1] == "verbose":
    logfilter.set_verbose()
logfilter.install()
os.write(2, b"I0000 00:00:1795661671.178335    5413 port.cc:153] oneDNN custom operations are on.\\n")
print("warning: ours, through Python", file=sys.stderr)
os.write(2, b"native text that is not a log line\\n")
from edgecnn.runtime import load
import numpy as np
with load(sys.argv[2]) as be:       # LiteRT prints its XNNPACK line from C on each load
    be.predict(np.zeros((2, 50, 50, 3), np.uint8))
os.write(2, b"last native line without newline")
"""


@pytest.mark.parametrize("mode", ["quiet", "verbose"])
def test_fd_filter_drops_native_noise_and_keeps_the_rest(mode):
    model = RELEASE / "basic_cnn-int8-qat.tflite"
    r = _run([sys.executable, "-c", FILTER_SCRIPT, mode, str(model)])
    assert r.returncode == 0, r.stderr
    for kept in ("warning: ours, through Python", "native text that is not a log line",
                 "last native line without newline"):
        assert kept in r.stderr
    noise = _noise(r.stderr)
    if mode == "quiet":
        assert noise == []
    else:
        assert any("oneDNN" in n for n in noise) and any("XNNPACK" in n for n in noise), r.stderr


def test_python_api_scanner_prints_no_runtime_log_line():
    """The library, not only the CLI: a Scanner made in a user's program prints no LiteRT line."""
    code = ("from edgecnn.scan import Scanner\n"
            "r = Scanner('exported/release/basic_cnn-int8-qat.tflite', threads=1).scan('examples/field-14082.png')\n"
            "print(r.tissue_tiles)\n")
    r = _run([sys.executable, "-c", code])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["221"] and not _noise(r.stderr), r.stderr


def test_evaluate_release_keras_prints_no_tensorflow_log_line(idc_data):
    """The issue's must-show: the release .keras scored on its test patients, stderr free of TF lines."""
    r = _run(EDGECNN + ["evaluate", str(RELEASE / "basic_cnn-fp32.keras"), "--data", str(idc_data),
                        "--split", str(RELEASE / "split.json"), "--quiet"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "balanced_accuracy" in r.stdout
    assert _noise(r.stderr) == [], r.stderr


def test_verbose_shows_tensorflow_lines():
    """--verbose on a command that imports TensorFlow: its own lines come back (the filter is the
    only thing hiding them, so this proves the test above can fail)."""
    r = _run(EDGECNN + ["models", "--build", "--verbose"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert any("oneDNN" in n or "cudart" in n for n in _noise(r.stderr)), r.stderr
    quiet = _run(EDGECNN + ["models", "--build"])
    assert quiet.returncode == 0 and _noise(quiet.stderr) == [], quiet.stderr


@pytest.mark.slow
def test_export_all_prints_no_converter_log_line(export_run, tmp_path):
    """The converters (TFLite, tf2onnx, onnxruntime quantization, OpenVINO) are the noisiest."""
    r = _run(EDGECNN + ["export", str(export_run.path), "--format", "all", "--out", str(tmp_path / "out"),
                        "-n", "20", "--quiet"])
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    # What may remain: our own lines (skips, float-op warnings, the output folder), nothing else.
    ours = ("skipped", "Output folder", "float ops remain")
    assert [line for line in lines if not line.lstrip().startswith(ours)] == [], r.stderr
