"""Exact GELU and LayerNorm as C++ CPU kernels (`model.cpu_kernels`), forward and backward.

MindSpore 2.10's CPU Erf and LayerNorm kernels took about a quarter of a DeiT-S forward
(Erf alone 10 ms per block at batch 8, against 9 ms for each MLP matmul), and its
LayerNormGrad an eighth of the tiny quick-start model's training step; `cpu_layers.cc`
computes the same functions in vectorised loops (GELU within 4e-7 of the exact function,
LayerNorm with its sums in double).  Each forward kernel carries its backward kernel as
its bprop.  Built on first use (ppt_ms.native).  Export and other devices use the
MindSpore ops.
"""
import os

import mindspore as ms
from mindspore import ops

from ..native import compiled_library

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cpu_layers.cc")
SETTING = "model.cpu_kernels"


def _first_input(x, *_):
    return x


def _kernel(entry: str, bprop=None, outputs=_first_input) -> ops.Custom:
    """A float32 kernel of cpu_layers.cc; `outputs` maps the inputs (their shapes, or their
    dtypes) to the outputs' (by default: one output like the first input)."""
    return ops.Custom("%s:%s" % (compiled_library(SOURCE, SETTING), entry), out_shape=outputs,
                      out_dtype=outputs, func_type="aot", bprop=bprop)


def gelu_kernel() -> ops.Custom:
    """x [...] float32 -> x * Phi(x); backward dx = dy * (Phi(x) + x phi(x))."""
    gelu_grad = _kernel("GeluGradKernel")

    def bprop(x, out, dout):
        return (gelu_grad(x, dout),)

    return _kernel("GeluKernel", bprop)


def layer_norm_kernel() -> ops.Custom:
    """(x [..., C], weight [C], bias [C], eps [1]) float32 -> LayerNorm over the last axis;
    backward (dx [..., C], dweight [C], dbias [C]; eps gets no gradient)."""
    layer_norm_grad = _kernel("LayerNormGradKernel", outputs=lambda x, weight, *_: (x, weight, weight))

    def bprop(x, weight, bias, eps, out, dout):
        dx, dweight, dbias = layer_norm_grad(x, weight, dout, eps)
        return dx, dweight, dbias, ops.zeros_like(eps)

    return _kernel("LayerNormKernel", bprop)


def eps_tensor(eps: float) -> ms.Tensor:
    return ms.Tensor([eps], ms.float32)
