"""TensorRT backend for serialized engines (.engine / .plan), TensorRT 10/11 Python API.

Uses the name-based tensor API (num_io_tensors, get_tensor_name, get_tensor_mode,
set_input_shape, set_tensor_address, execute_async_v3). Device memory comes from PyTorch when
it is installed with CUDA, else from cuda-python (``cuda.bindings.runtime`` / ``cuda.cudart``);
close() frees every buffer and destroys the stream.
An engine is tied to the GPU (compute capability) and TensorRT version that built it: the
manifest's ``tensorrt`` block says which, and loading it anywhere else is a clear error.
The GPU is found through the CUDA driver library itself (``cuda_devices``), not nvidia-smi,
which Jetson boards do not have.
"""

from __future__ import annotations

import ctypes
import sys
import warnings

import numpy as np

from edgecnn.runtime.base import Backend, RuntimeUnavailable, manifest_quant

INSTALL_HINT = ("TensorRT engines need an NVIDIA GPU with its driver and the TensorRT Python packages: "
                "pip install edgecnn[trt] (tensorrt + cuda-python). On a machine without an NVIDIA GPU, "
                "run the .onnx artifact with onnxruntime or openvino instead.")


def _trt():
    try:
        import tensorrt as trt  # type: ignore[import-not-found]
    except ImportError as e:
        raise RuntimeUnavailable(f"{INSTALL_HINT} (import tensorrt failed: {e})") from None
    return trt


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorrt") is not None


_CU_ATTR_CC_MAJOR, _CU_ATTR_CC_MINOR = 75, 76   # CUdevice_attribute values (cuda.h)


def _libcuda():
    names = ("nvcuda.dll",) if sys.platform == "win32" else ("libcuda.so.1", "libcuda.so")
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def cuda_devices() -> tuple[list[dict], str]:
    """([{"name", "compute_capability"}], reason when empty) from the CUDA driver API.

    cuInit / cuDeviceGetCount / cuDeviceGetName / cuDeviceGetAttribute through ctypes: works on
    desktop drivers and on Jetson (libcuda.so.1 from L4T), needs no Python CUDA package.
    """
    lib = _libcuda()
    if lib is None:
        return [], "no CUDA driver library (libcuda) found"
    rc = lib.cuInit(0)
    if rc != 0:
        return [], f"the CUDA driver is present but cuInit failed (CUresult {rc}: no usable GPU)"
    count = ctypes.c_int(0)
    if lib.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value == 0:
        return [], "the CUDA driver reports no GPU"
    out = []
    for i in range(count.value):
        dev, name = ctypes.c_int(0), ctypes.create_string_buffer(256)
        major, minor = ctypes.c_int(0), ctypes.c_int(0)
        lib.cuDeviceGet(ctypes.byref(dev), i)
        lib.cuDeviceGetName(name, 256, dev)
        lib.cuDeviceGetAttribute(ctypes.byref(major), _CU_ATTR_CC_MAJOR, dev)
        lib.cuDeviceGetAttribute(ctypes.byref(minor), _CU_ATTR_CC_MINOR, dev)
        out.append({"name": name.value.decode(errors="replace"), "compute_capability": f"{major.value}.{minor.value}"})
    return out, ""


def check_build_target(manifest: dict, path, trt_version: str, device: dict | None) -> None:
    """Refuse an engine built by another TensorRT version or for another GPU architecture.

    TensorRT's own message for that is a deserialization failure; this names both sides. A
    different GPU model of the same compute capability only warns (TensorRT runs it, maybe slower).
    """
    built = (manifest or {}).get("tensorrt") or {}
    if built.get("version") and str(built["version"]) != str(trt_version):
        raise ValueError(f"{path}: built with TensorRT {built['version']}, this machine has TensorRT {trt_version}; "
                         "engines do not move between TensorRT versions: rebuild it here with "
                         "edgecnn export RUN --format trt (or trtexec, docs/tensorrt.md)")
    if device is None:
        return
    cc = built.get("compute_capability")
    if cc and str(cc) != device["compute_capability"]:
        raise ValueError(f"{path}: built for a GPU of compute capability {cc} ({built.get('gpu')}), this GPU is "
                         f"{device['name']} ({device['compute_capability']}); rebuild the engine on this machine")
    if built.get("gpu") and built["gpu"] != device["name"]:
        warnings.warn(f"{path}: built on {built['gpu']}, running on {device['name']} (same compute capability); "
                      "rebuild it here for the best kernels", stacklevel=3)


class _TorchMem:
    """Device buffers as torch CUDA tensors on torch's current stream."""

    def __init__(self):
        import torch

        if not torch.cuda.is_available():
            raise RuntimeUnavailable(f"PyTorch sees no CUDA GPU. {INSTALL_HINT}")
        self.torch = torch
        self.stream = torch.cuda.Stream()

    def empty(self, shape, dtype):
        t = self.torch.empty(tuple(shape), dtype=getattr(self.torch, np.dtype(dtype).name), device="cuda")
        return t, t.data_ptr()

    def to_device(self, buf, host: np.ndarray) -> None:
        with self.torch.cuda.stream(self.stream):
            buf.copy_(self.torch.from_numpy(host), non_blocking=False)

    def to_host(self, buf) -> np.ndarray:
        with self.torch.cuda.stream(self.stream):
            out = buf.cpu()
        return out.numpy()

    @property
    def handle(self) -> int:
        return int(self.stream.cuda_stream)

    def sync(self) -> None:
        self.stream.synchronize()

    def free(self, buf) -> None:
        # Releases the allocation now (a bare `del` only drops this frame's name for it); close()
        # then hands torch's cached blocks back to the driver.
        buf.untyped_storage().resize_(0)

    def close(self) -> None:
        self.stream.synchronize()
        self.stream = None
        self.torch.cuda.empty_cache()   # return the cached blocks to the driver


class _CudaPythonMem:
    """Device buffers from cuda-python's runtime API (cudaMalloc / cudaMemcpyAsync)."""

    def __init__(self):
        try:
            from cuda.bindings import runtime as cudart  # type: ignore[import-not-found]
        except ImportError:
            try:
                from cuda import cudart  # type: ignore[import-not-found]
            except ImportError:
                raise RuntimeUnavailable(f"neither PyTorch (CUDA) nor cuda-python is installed. {INSTALL_HINT}") from None
        self.rt = cudart
        self.stream = self._ok(cudart.cudaStreamCreate())

    def _ok(self, result):
        err, *rest = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            raise RuntimeError(f"CUDA runtime error {err}")
        return rest[0] if len(rest) == 1 else (tuple(rest) or None)

    def empty(self, shape, dtype):
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        ptr = self._ok(self.rt.cudaMalloc(nbytes))
        return (ptr, tuple(shape), np.dtype(dtype)), int(ptr)

    def to_device(self, buf, host: np.ndarray) -> None:
        ptr, _, _ = buf
        host = np.ascontiguousarray(host)
        self._ok(self.rt.cudaMemcpyAsync(ptr, host.ctypes.data, host.nbytes,
                                         self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream))

    def to_host(self, buf) -> np.ndarray:
        ptr, shape, dtype = buf
        out = np.empty(shape, dtype=dtype)
        self._ok(self.rt.cudaMemcpyAsync(out.ctypes.data, ptr, out.nbytes,
                                         self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream))
        self.sync()
        return out

    @property
    def handle(self) -> int:
        return int(self.stream)

    def sync(self) -> None:
        self._ok(self.rt.cudaStreamSynchronize(self.stream))

    def free(self, buf) -> None:
        self._ok(self.rt.cudaFree(buf[0]))

    def close(self) -> None:
        if self.stream is not None:
            self._ok(self.rt.cudaStreamSynchronize(self.stream))
            self._ok(self.rt.cudaStreamDestroy(self.stream))
            self.stream = None


def _memory():
    try:
        import torch

        if torch.cuda.is_available():
            return _TorchMem()
    except ImportError:
        pass
    return _CudaPythonMem()


class TensorRTBackend(Backend):
    runtime = "tensorrt"

    def _load(self) -> None:
        if self.requested_precision not in (None, self.precision):
            raise ValueError(f"{self.path}: a TensorRT engine's precision is fixed when it is built ({self.precision}); "
                             "build another engine with edgecnn export --format trt --precision ...")
        trt = _trt()
        self.trt = trt
        devices, why = cuda_devices()
        if not devices:
            raise RuntimeUnavailable(f"{self.path}: {why}. {INSTALL_HINT}")
        check_build_target(self.manifest, self.path, trt.__version__, devices[0])
        self.mem = _memory()
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.trt_runtime = trt.Runtime(self.logger)
        self.engine = self.trt_runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise RuntimeError(
                f"{self.path}: TensorRT {trt.__version__} could not deserialize this engine. Engines only run on "
                "the GPU model and TensorRT version that built them: rebuild it here with edgecnn export --format trt")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        ins = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(ins) != 1 or len(outs) != 1:
            raise ValueError(f"{self.path}: expected one input and one output tensor; the engine has inputs {ins}, outputs {outs}")
        self._in, self._out = ins[0], outs[0]
        self.input_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self._in)))
        self._out_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self._out)))
        if self.input_dtype in (np.dtype(np.int8), np.dtype(np.uint8)):
            self.input_quant = manifest_quant(self.manifest, "input", self.path)
        if self._out_dtype in (np.dtype(np.int8), np.dtype(np.uint8)):
            self.output_quant = manifest_quant(self.manifest, "output", self.path)
        shape = list(self.engine.get_tensor_shape(self._in))
        self.model_input_size = int(shape[1]) if shape[1] > 0 else None
        if shape[0] > 0:
            self.fixed_batch = int(shape[0])
        else:
            # Dynamic batch: the optimization profile's max is the largest batch this engine takes.
            _, _, max_shape = self.engine.get_tensor_profile_shape(self._in, 0)
            self.max_batch = int(max_shape[0])
        self._bufs: dict[tuple, tuple] = {}

    def _buffers(self, shape: tuple[int, ...]):
        # One set of device buffers per batch shape; predict() uses at most two (full and last chunk).
        if shape not in self._bufs:
            self.context.set_input_shape(self._in, shape)
            out_shape = tuple(self.context.get_tensor_shape(self._out))
            in_buf, in_ptr = self.mem.empty(shape, self.input_dtype)
            out_buf, out_ptr = self.mem.empty(out_shape, self._out_dtype)
            self._bufs[shape] = (in_buf, in_ptr, out_buf, out_ptr)
        return self._bufs[shape]

    def _run(self, batch: np.ndarray) -> np.ndarray:
        in_buf, in_ptr, out_buf, out_ptr = self._buffers(tuple(batch.shape))
        self.context.set_input_shape(self._in, batch.shape)
        self.context.set_tensor_address(self._in, in_ptr)
        self.context.set_tensor_address(self._out, out_ptr)
        self.mem.to_device(in_buf, batch)
        if not self.context.execute_async_v3(self.mem.handle):
            raise RuntimeError(f"{self.path}: TensorRT execute_async_v3 failed (see the TensorRT log above)")
        self.mem.sync()
        return self.mem.to_host(out_buf)

    def _close(self) -> None:
        mem = getattr(self, "mem", None)
        for in_buf, _, out_buf, _ in getattr(self, "_bufs", {}).values():
            mem.free(in_buf)
            mem.free(out_buf)
        self._bufs = {}
        # The context and engine go before the memory and stream they run on.
        self.context = None
        self.engine = None
        if mem is not None:
            mem.close()
            self.mem = None
