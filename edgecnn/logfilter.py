"""Keep TensorFlow's and LiteRT's native log lines off the terminal unless --verbose.

TF 2.21 logs through absl before ``absl::InitializeLog`` is called, so ``TF_CPP_MIN_LOG_LEVEL``
no longer hides the oneDNN / cudart / cuInit lines, and LiteRT prints its XNNPACK line with a
plain ``fprintf(stderr)``. Neither can be turned off from Python, so the filter works on the
file descriptor: fd 2 becomes a pipe read by a thread that drops lines in those log formats and
passes everything else through. Python's own ``sys.stderr`` (rich, our warnings, tracebacks)
is pointed at the real stderr, so terminal detection and progress bars are unchanged.
No TensorFlow here: the device commands use this too.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import logging
import os
import re
import sys
import tempfile
import threading
import warnings

# absl/glog lines: "I0000 00:00:1795661671.178335    5413 port.cc:153] ...";
# TF's older format: "2025-09-17 14:44:05.157831: I external/.../cudart_stub.cc:32] ...".
# Info and warning lines only: an absl error or fatal line stays visible, except the one every
# TensorFlow import on a machine without a GPU prints (cuInit failing is how it learns there is none).
NOISE = re.compile(
    rb"^(?:[IW]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w./+-]+:\d+\] "
    rb"|E\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ cuda_(?:platform|executor|diagnostics)\.cc:\d+\] "
    rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IW] [\w./+-]+:\d+\] "
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|INFO: Created TensorFlow Lite XNNPACK delegate"
    rb"|INFO: Initialized TensorFlow Lite runtime"
    rb"|WARNING: Attempting to use a delegate that only supports static-sized tensors"
    # The TFLite quantizer's bare printf on each int8 conversion:
    rb"|fully_quantize: \d+, inference_type: \d+, input_inference_type: \w+, output_inference_type: )"
)
# Python-side chatter of the converters and Keras (absl and logging.warning calls).
NOISY_LOGGERS = ("tensorflow", "absl", "tf2onnx", "tf_keras", "h5py", "onnx", "onnxruntime")

_state: dict = {}


def is_noise(line: bytes) -> bool:
    return bool(NOISE.match(line.lstrip(b"\r")))


def _pump(read_fd: int, out_fd: int) -> None:
    buf = b""
    while True:
        try:
            chunk = os.read(read_fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        buf += chunk
        *lines, buf = buf.split(b"\n")
        kept = b"".join(line + b"\n" for line in lines if not is_noise(line))
        if kept:
            os.write(out_fd, kept)
    if buf and not is_noise(buf):
        os.write(out_fd, buf)
    os.close(read_fd)


_WARNING_MODULES = ("tensorflow", "tf_keras", "keras", "tf2onnx", "google.protobuf", "tensorflow_model_optimization")


def verbose() -> bool:
    return os.environ.get("EDGECNN_VERBOSE") == "1"


def quiet_python_loggers() -> None:
    """The Python side of the noise (absl/logging warnings of TF, tf2onnx); edgecnn._tf calls this too."""
    if verbose():
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # still honoured by TF's older code paths
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    if "absl.logging" in sys.modules:
        sys.modules["absl.logging"].set_verbosity("error")
    for mod in _WARNING_MODULES:
        warnings.filterwarnings("ignore", module=mod)


def set_verbose() -> None:
    """--verbose: every log line from here on, as the libraries print it."""
    os.environ["EDGECNN_VERBOSE"] = "1"
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    uninstall()
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    if "absl.logging" in sys.modules:
        sys.modules["absl.logging"].set_verbosity("info")
    warnings.filters[:] = [f for f in warnings.filters if not (f[0] == "ignore" and f[3] is not None
                                                               and f[3].pattern in _WARNING_MODULES)]


def install() -> bool:
    """Filter native log lines out of fd 2 from now on (once per process). True if installed.

    Only when Python's stderr is the process's fd 2: under a test runner that swapped it (typer's
    CliRunner), the descriptor is not ours to rewire.
    """
    quiet_python_loggers()
    if _state or verbose() or os.environ.get("EDGECNN_NO_LOG_FILTER") == "1":
        return bool(_state)
    try:
        sys.stderr.flush()
        real = os.dup(2)
        read_fd, write_fd = os.pipe()
    except OSError:
        return False
    try:
        own = sys.stderr.fileno() == 2
    except (AttributeError, OSError, io.UnsupportedOperation):
        own = False
    if not own:
        os.close(real), os.close(read_fd), os.close(write_fd)
        return False
    previous = sys.stderr
    sys.stderr = io.TextIOWrapper(os.fdopen(os.dup(real), "wb", buffering=0), encoding=previous.encoding,
                                  errors="backslashreplace", line_buffering=True, write_through=True)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    t = threading.Thread(target=_pump, args=(read_fd, real), name="edgecnn-log-filter", daemon=True)
    t.start()
    _state.update(real=real, thread=t, previous=previous)
    atexit.register(uninstall)
    return True


@contextlib.contextmanager
def quiet_native():
    """Drop the noise native code prints to fd 2 inside this block, for library callers that did
    not install the filter (the Python API: ``Scanner`` would print LiteRT's XNNPACK line each
    time). What is not noise is written back to stderr afterwards."""
    if _state or verbose():
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except OSError:
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = b"".join(line + b"\n" for line in tmp.read().split(b"\n") if line and not is_noise(line))
            if kept:
                os.write(2, kept)


def uninstall() -> None:
    """Give fd 2 back and let the filter drain what native code wrote last."""
    if not _state:
        return
    real, t, previous = _state.pop("real"), _state.pop("thread"), _state.pop("previous")
    try:
        sys.stderr.flush()
        os.dup2(real, 2)  # closes the pipe's write end held by fd 2: the pump sees EOF
    except OSError:
        return
    sys.stderr = previous
    # A child process that inherited the pipe keeps it open; do not wait for it forever.
    t.join(timeout=2.0)
