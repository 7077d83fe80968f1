"""CPU inference: biases, the attention scale and the softmax folded into the C++ kernels.

At batch 1 a DeiT-S block spent about as long adding qkv's and fc1's biases (MindSpore's
BiasAdd, 140-170 us each), scaling q and running MindSpore's softmax (270 us) as in its
GELU; with proportional attention (PPT, ToMe) adding log(size) to the logits took as long
again.  After the linear weights are stored [in, out] (inference_layout.py) and the layers
run the kernels (cpu_layers.py), `with_folded_kernels(net)` swaps:

- each CpuAttention for a FoldedAttention: q, k, v = heads of (x W + b), q scaled by
  d^-0.5, in one kernel; the softmax a kernel, which also adds log(size);
- each Mlp whose activation is the GELU kernel for a FoldedMlp: GELU(x W1 + b1) in one kernel.

The same values are computed in the same order (the bias added, then the scale multiplied),
so the function is unchanged (the conformance tests run this form).  No backward: inference only.
"""
import mindspore as ms
from mindspore import nn, ops

from ..models.layers import Mlp
from .cpu_layers import CpuAttention, CpuGELU, bias_gelu_kernel, bias_split_heads_kernel, softmax_kernel
from .inference_layout import InferenceLinear
from .swap import replace_cells


class FoldedAttention(CpuAttention):
    """A CpuAttention (its qkv an InferenceLinear) whose heads come out of one kernel with
    qkv's bias added and q already scaled, and whose softmax is a kernel."""

    def __init__(self, attn: CpuAttention):
        super().__init__(attn)
        self.qkv_bias = self.qkv.bias if self.qkv.bias is not None else ms.Tensor(
            [0.0] * self.qkv.out_channels, ms.float32)
        self.group_scales = ms.Tensor([attn.scale, 1.0, 1.0], ms.float32)
        self.split_heads = bias_split_heads_kernel(attn.num_heads)
        self.softmax = softmax_kernel()

    def heads(self, x):
        """q (scaled by d^-0.5), k, v [B, H, N, d]."""
        b, n, c = x.shape
        qkv = self.qkv.product(x.reshape(b * n, c)).reshape(b, n, -1)
        return self.split_heads(qkv, self.qkv_bias, self.group_scales)

    def probabilities(self, q, k, size=None):
        logits = self.scores(q, k)
        if size is None:
            return self.softmax(logits)
        b, m = size.shape[:2]
        return self.softmax(logits, ops.log(size.astype(ms.float32)).reshape(b, m))


class FoldedMlp(nn.Cell):
    """An Mlp (fc1, fc2 InferenceLinears, the GELU kernel) with fc1's bias added inside the GELU kernel."""

    def __init__(self, mlp: Mlp):
        super().__init__()
        self.fc1, self.fc2 = mlp.fc1, mlp.fc2
        self.act = bias_gelu_kernel()

    def construct(self, x):
        shape = x.shape
        hidden = self.act(self.fc1.product(x.reshape(-1, shape[-1])), self.fc1.bias)
        return self.fc2(hidden.reshape(shape[:-1] + (-1,)))


def _folded(cell):
    if type(cell) is CpuAttention and isinstance(cell.qkv, InferenceLinear):
        return FoldedAttention(cell)
    if (isinstance(cell, Mlp) and isinstance(cell.act, CpuGELU) and isinstance(cell.fc1, InferenceLinear)
            and cell.fc1.bias is not None):
        return FoldedMlp(cell)
    return None


def with_folded_kernels(net: nn.Cell) -> nn.Cell:
    """`net` (with the CPU layer kernels and the [in, out] layout) with its attentions and GELU
    MLPs swapped, in place, for the folded forms; returns `net`."""
    replace_cells(net, _folded)
    return net
