"""ONNX Runtime sessions for exported files: one set-up for verification and benchmarks.

A session uses every execution provider this onnxruntime build offers, best
first as onnxruntime orders them (CUDA or TensorRT where installed, then the
CPU), except the remote Azure provider, and as many intra-op threads as the
process may use cores.
"""
import os
from typing import List

import numpy as np

from .errors import PPTMSError

REMOTE_PROVIDERS = ("AzureExecutionProvider",)


class OnnxRuntimeError(PPTMSError, RuntimeError):
    """onnxruntime is missing or cannot load or run a file; the message says which file and why."""


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise OnnxRuntimeError("running ONNX files needs onnxruntime, which is not installed "
                               "(pip install onnxruntime)") from None
    return onnxruntime


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def onnxruntime_version() -> str:
    return _onnxruntime().__version__


class OnnxSession:
    """An onnxruntime InferenceSession of one file with a single image input."""

    def __init__(self, path: str, threads: int = 0):
        ort = _onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or usable_cores()
        options.log_severity_level = 3  # errors only: MindSpore's files draw warnings on duplicate constant names
        providers = [p for p in ort.get_available_providers() if p not in REMOTE_PROVIDERS]
        try:
            self.session = ort.InferenceSession(path, options, providers=providers)
        except Exception as error:  # onnxruntime raises its own exception types
            raise OnnxRuntimeError("onnxruntime cannot load %s: %s" % (path, str(error).strip().splitlines()[0])) \
                from None
        self.path = path
        self.input_name = self.session.get_inputs()[0].name
        self.threads = options.intra_op_num_threads

    @property
    def providers(self) -> List[str]:
        """The execution providers the session runs on, first = preferred."""
        return self.session.get_providers()

    def run(self, images: np.ndarray) -> List[np.ndarray]:
        try:
            return self.session.run(None, {self.input_name: np.ascontiguousarray(images, dtype=np.float32)})
        except Exception as error:
            raise OnnxRuntimeError("onnxruntime cannot run %s on an input of shape %s: %s"
                                   % (self.path, list(images.shape), str(error).strip().splitlines()[0])) from None
