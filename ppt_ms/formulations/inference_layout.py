"""The linear layers of a network with their weights stored [in, out], for inference.

timm (and nn.Dense) store a linear weight as [out, in], so each call computes x W^T.
MindSpore's CPU MatMul (oneDNN) copies a transposed weight on every call, a cost that
does not shrink with the token count: at batch 1 it made DeiT-S's reduced blocks (49-147
tokens) relatively slower than the full ones.  With the weight stored [in, out] the same
product is a plain MatMul.  The function computed is unchanged; the new weights carry
other names (`<layer>.weight_in_out`), so a timm checkpoint refuses to load into the
converted network instead of filling it in the wrong layout.
"""
import numpy as np
import mindspore as ms
from mindspore import nn, ops, Parameter

from ..models.layers import PatchProjection
from .swap import replace_cells

CONVERTED = (nn.Dense, PatchProjection)


class InferenceLinear(nn.Cell):
    """x [..., in] -> x W + b [..., out], W stored [in, out]; made from a layer holding
    W as [out, ...] (nn.Dense [out, in], PatchProjection [out, 3, p, p]).  Its in_channels
    and out_channels are named as nn.Dense's."""

    def __init__(self, layer):
        super().__init__()
        weight = layer.weight.asnumpy()
        weight_in_out = np.ascontiguousarray(weight.reshape(weight.shape[0], -1).T)
        self.weight_in_out = Parameter(ms.Tensor(weight_in_out), name="weight_in_out")
        self.in_channels, self.out_channels = weight_in_out.shape
        self.bias = layer.bias if getattr(layer, "has_bias", True) else None
        self.matmul = ops.MatMul()
        self.bias_add = ops.BiasAdd()

    def product(self, x):
        """x [M, in] -> x W [M, out], without the bias."""
        return self.matmul(x, self.weight_in_out.astype(x.dtype))

    def construct(self, x):
        shape = x.shape
        y = self.product(x.reshape(-1, shape[-1]))
        if self.bias is not None:
            y = self.bias_add(y, self.bias.astype(x.dtype))
        return y.reshape(shape[:-1] + (y.shape[-1],))


def with_inference_layout(net: nn.Cell) -> nn.Cell:
    """`net` with every nn.Dense and patch projection replaced, in place, by an
    InferenceLinear holding the same weight as [in, out]; returns `net`."""
    replace_cells(net, lambda cell: InferenceLinear(cell) if isinstance(cell, CONVERTED) else None)
    return net
