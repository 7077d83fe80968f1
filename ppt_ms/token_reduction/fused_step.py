"""The reduction step as one C++ kernel on CPU (`token_reduction.fused_cpu_kernel`).

Composed from MindSpore ops, a PPT step is about 55 small kernels.  On CPU at
batch 1 each costs 5-30 us to launch whatever its size, so the step weighs
10-13 % of a DeiT-S block.  `cpu_step.cc` makes the same decisions (scores,
variance, matching, pruning order, size-weighted merge) in one AOT custom
kernel, compiled on first use (ppt_ms.native).

It is for CPU inference only: it has no backward (training uses the ops), it
does not trace sources, and a MindIR that contained it would need this
machine's shared library (export uses the ops).
"""
import os

import mindspore as ms
from mindspore import ops

from ..native import compiled_library

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cpu_step.cc")


def kernel_library() -> str:
    """Path of the compiled cpu_step.cc (compiled on first use; see ppt_ms.native)."""
    return compiled_library(SOURCE, "token_reduction.fused_cpu_kernel")


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


def settings_tensor(threshold: float, distill_token: bool) -> ms.Tensor:
    return ms.Tensor([threshold, 1.0 if distill_token else 0.0], ms.float32)
