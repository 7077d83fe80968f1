"""The reduction step as one C++ kernel on CPU (`token_reduction.fused_cpu_kernel`).

Composed from MindSpore ops, a PPT step is about 55 small kernels.  On CPU at
batch 1 each costs 5-30 us to launch whatever its size, so the step weighs
10-13 % of a DeiT-S block.  `cpu_step.cc` makes the same decisions (scores,
variance, matching, pruning order, size-weighted merge) in one AOT custom
kernel.  It is compiled with the system C++ compiler the first time it is
needed and cached by the hash of its source and flags.

It is for CPU inference only: it has no backward (training uses the ops), it
does not trace sources, and a MindIR that contained it would need this
machine's shared library (export uses the ops).
"""
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile

import mindspore as ms
from mindspore import ops

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cpu_step.cc")
COMPILE_FLAGS = ("-O3", "-std=c++17", "-shared", "-fPIC", "-pthread")
CACHE_ENV = "PPT_MS_KERNEL_CACHE"


def cache_dir() -> str:
    """Where compiled kernels are kept: $PPT_MS_KERNEL_CACHE, else ~/.cache/ppt_ms."""
    return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "ppt_ms")


@functools.lru_cache(maxsize=None)
def kernel_library() -> str:
    """Path of the compiled cpu_step.cc, compiling it if this source has not been
    compiled yet.  The library is written under a temporary name and renamed, so
    processes starting together (msrun workers) never load a half-written file."""
    compiler = os.environ.get("CXX", "g++")
    if shutil.which(compiler) is None:
        raise RuntimeError("token_reduction.fused_cpu_kernel needs a C++ compiler to build %s, and %r was not "
                           "found (set CXX, or install g++); or set fused_cpu_kernel: false" % (SOURCE, compiler))
    with open(SOURCE, "rb") as f:
        digest = hashlib.sha256(f.read() + " ".join((compiler,) + COMPILE_FLAGS).encode()).hexdigest()[:16]
    directory = cache_dir()
    library = os.path.join(directory, "cpu_step_%s.so" % digest)
    if os.path.exists(library):
        return library
    os.makedirs(directory, exist_ok=True)
    fd, partial = tempfile.mkstemp(suffix=".so", dir=directory)
    os.close(fd)
    try:
        result = subprocess.run([compiler, *COMPILE_FLAGS, "-o", partial, SOURCE], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError("compiling %s for token_reduction.fused_cpu_kernel failed:\n%s"
                               % (SOURCE, result.stderr.strip()))
        os.replace(partial, library)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return library


def _reduced_shapes(kept: int):
    def infer(x, size, *_):
        return [x[0], kept, x[2]], [size[0], kept, 1]
    return infer


def _same_dtypes(x, size, *_):
    return x, size


def fused_step(method: str, num_out: int):
    """The Custom primitive for `method` ("ppt" or "tome") leaving `num_out` tokens:
    ToMe (x, size, k, settings), PPT (x, size, k, v, probs, settings) -> (x, size),
    all float32; settings = [threshold, 1.0 if there is a distillation token]."""
    entry = {"ppt": "PPTStep", "tome": "ToMeStep"}[method]
    step = ops.Custom("%s:%s" % (kernel_library(), entry), out_shape=_reduced_shapes(num_out),
                      out_dtype=_same_dtypes, func_type="aot")
    # graph mode caches shape inference by primitive attributes and input shapes, not by
    # out_shape: without this attribute, steps with equal inputs and another r would share a shape
    step.add_prim_attr("tokens_out", num_out)
    return step


def check_device(device_target: str):
    """The kernel is CPU code: refuse other devices by name rather than fail in the graph."""
    if device_target != "CPU":
        raise ValueError("token_reduction.fused_cpu_kernel runs on CPU only, but device_target is %s; "
                         "set fused_cpu_kernel: false" % device_target)


def settings_tensor(threshold: float, distill_token: bool) -> ms.Tensor:
    return ms.Tensor([threshold, 1.0 if distill_token else 0.0], ms.float32)
