"""The reduction step as one C++ kernel on CPU (`token_reduction.fused_cpu_kernel`).

Composed from MindSpore ops, a PPT step is about 55 small kernels.  On CPU at
batch 1 each costs 5-30 us to launch whatever its size, so the step weighs
10-13 % of a DeiT-S block.  `cpu_step.cc` makes the same decisions (scores,
variance, matching, pruning order, size-weighted merge) in one AOT custom
kernel, compiled on first use (native.py), and reports them: a trace of a
fused network shows what the kernel chose.

It is for CPU inference only: it has no backward, it does not trace sources,
and a file that contained it would need this machine's shared library.
"""
import os

import mindspore as ms
from mindspore import nn, ops

from ..token_reduction.reducers import PPTReducer, ToMeReducer
from .native import compiled_library
from .swap import replace_cells

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cpu_step.cc")
SETTING = "token_reduction.fused_cpu_kernel"


def kernel_library() -> str:
    """Path of the compiled cpu_step.cc (compiled on first use; see native.py)."""
    return compiled_library(SOURCE, SETTING)


def _reduced_shapes(kept: int):
    def infer(x, size, *_):
        return [x[0], kept, x[2]], [size[0], kept, 1], [x[0], 2]
    return infer


def _output_dtypes(x, size, *_):
    return x, size, x


def fused_step(method: str, num_out: int):
    """The Custom primitive for `method` ("ppt" or "tome") leaving `num_out` tokens:
    ToMe (x, size, k, settings), PPT (x, size, k, v, probs, settings) -> (x, size,
    decisions [B, 2] = (1 if pooled, score variance), zeros for ToMe), all float32;
    settings: FusedReducer.settings."""
    entry = {"ppt": "PPTStep", "tome": "ToMeStep"}[method]
    step = ops.Custom("%s:%s" % (kernel_library(), entry), out_shape=_reduced_shapes(num_out),
                      out_dtype=_output_dtypes, func_type="aot")
    # graph mode caches shape inference by primitive attributes and input shapes, not by
    # out_shape: without this attribute, steps with equal inputs and another r would share a shape
    step.add_prim_attr("tokens_out", num_out)
    return step


class FusedReducer(nn.Cell):
    """A PPT or ToMe reducer's step as one kernel call: the same inputs, outputs and results."""

    def __init__(self, reducer):
        super().__init__()
        self.method = "ppt" if isinstance(reducer, PPTReducer) else "tome"
        self.kernel = fused_step(self.method, reducer.num_out)
        threshold = reducer.threshold if self.method == "ppt" else 0.0
        prefix = reducer.prefix
        # what cpu_step.cc reads: the threshold and the prefix layout (token_reduction/prefix.py)
        self.settings = ms.Tensor([threshold, prefix.distilled, prefix.matched_from, prefix.protects_class_token,
                                   prefix.scored_from, prefix.count], ms.float32)

    def construct(self, x, size, source, k, v, probs):
        inputs = (x.astype(ms.float32), size.astype(ms.float32), k.astype(ms.float32))
        if self.method == "ppt":
            inputs = inputs + (v.astype(ms.float32), probs.astype(ms.float32))
        merged, size, decisions = self.kernel(*inputs, self.settings)
        return merged.astype(x.dtype), size.astype(ms.int32), source, decisions


def _fused(cell):
    if type(cell) in (PPTReducer, ToMeReducer) and not cell.trace_source:
        return FusedReducer(cell)
    return None


def with_fused_steps(net: nn.Cell) -> nn.Cell:
    """`net` with every PPT and ToMe reducer that does not trace sources swapped, in place,
    for a FusedReducer (pruning has no fused kernel); returns `net`."""
    replace_cells(net, _fused)
    return net
