"""Exact GELU and LayerNorm as C++ CPU kernels (`model.cpu_kernels`), for inference.

MindSpore 2.10's CPU Erf and LayerNorm kernels took about a quarter of a DeiT-S forward
(Erf alone 10 ms per block at batch 8, against 9 ms for each MLP matmul); `cpu_layers.cc`
computes the same functions in vectorised loops (GELU within 4e-7 of the exact function,
LayerNorm with its sums in double).  Built on first use (ppt_ms.native).  Training, export
and other devices use the MindSpore ops.
"""
import os

import mindspore as ms
from mindspore import ops

from ..native import compiled_library

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cpu_layers.cc")
SETTING = "model.cpu_kernels"


def _kernel(entry: str) -> ops.Custom:
    """A float32 kernel whose output has the shape and dtype of its first input."""
    return ops.Custom("%s:%s" % (compiled_library(SOURCE, SETTING), entry), out_shape=lambda x, *_: x,
                      out_dtype=lambda x, *_: x, func_type="aot")


def gelu_kernel() -> ops.Custom:
    """x [...] float32 -> x * Phi(x)."""
    return _kernel("GeluKernel")


def layer_norm_kernel() -> ops.Custom:
    """(x [..., C], weight [C], bias [C], eps [1]) float32 -> LayerNorm over the last axis."""
    return _kernel("LayerNormKernel")


def eps_tensor(eps: float) -> ms.Tensor:
    return ms.Tensor([eps], ms.float32)
