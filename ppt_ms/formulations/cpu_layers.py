"""Exact GELU and LayerNorm, and the patch and head layout copies, as C++ CPU kernels
(`model.cpu_kernels`), forward and backward.

MindSpore 2.10's CPU Erf and LayerNorm kernels took about a quarter of a DeiT-S forward
(Erf alone 10 ms per block at batch 8, against 9 ms for each MLP matmul), and its
LayerNormGrad an eighth of the tiny quick-start model's training step; `cpu_layers.cc`
computes the same functions in vectorised loops (GELU within 4e-7 of the exact function,
LayerNorm with its sums in double).  Its CPU Transpose, which cut the image into patches,
put q, k, v into heads and the heads back into tokens, kept position tables of up to
twice its output for as long as the graph lived (~150 MB per DeiT-S block at batch 64,
most of the 3 GB a compiled DeiT-S held); the layout kernels copy the same values into
MindSpore's own (reused) outputs.  Each forward kernel carries its backward kernel as its
bprop.  Built on first use (formulations/native.py).

`with_cpu_layers(net)` swaps a network's LayerNorms, GELUs, patch embedding and attention
for cells that run these kernels; the function computed is the same (tests/test_cpu_layers.py).
"""
import os

import mindspore as ms
from mindspore import nn, ops

from ..models.attention import Attention
from ..models.layers import GELU, LayerNorm, PatchEmbed
from .native import compiled_library
from .swap import replace_cells

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cpu_layers.cc")
SETTING = "model.cpu_kernels"


def _first_input(x, *_):
    return x


def _kernel(entry: str, bprop=None, outputs=_first_input, dtypes=None) -> ops.Custom:
    """A kernel of cpu_layers.cc; `outputs` maps the inputs' shapes to the outputs' (by default:
    one output like the first input), `dtypes` their dtypes (by default: as `outputs` does)."""
    return ops.Custom("%s:%s" % (compiled_library(SOURCE, SETTING), entry), out_shape=outputs,
                      out_dtype=dtypes or outputs, func_type="aot", bprop=bprop)


def gelu_kernel() -> ops.Custom:
    """x [...] float32 -> x * Phi(x); backward dx = dy * (Phi(x) + x phi(x))."""
    gelu_grad = _kernel("GeluGradKernel")

    def bprop(x, out, dout):
        return (gelu_grad(x, dout),)

    return _kernel("GeluKernel", bprop)


def bias_gelu_kernel() -> ops.Custom:
    """(x [..., C], bias [C]) float32 -> GELU(x + bias); no backward (inference)."""
    return _kernel("BiasGeluKernel")


def softmax_kernel() -> ops.Custom:
    """x [..., N] float32 -> softmax over the last axis; (x [B, ..., N], bias [B, N]) -> the softmax
    of x plus its batch's bias row; no backward (inference)."""
    return _kernel("SoftmaxKernel")


def layer_norm_kernel() -> ops.Custom:
    """(x [..., C], weight [C], bias [C], eps [1]) float32 -> LayerNorm over the last axis;
    backward (dx [..., C], dweight [C], dbias [C]; eps gets no gradient)."""
    layer_norm_grad = _kernel("LayerNormGradKernel", outputs=lambda x, weight, *_: (x, weight, weight))

    def bprop(x, weight, bias, eps, out, dout):
        dx, dweight, dbias = layer_norm_grad(x, weight, dout, eps)
        return dx, dweight, dbias, ops.zeros_like(eps)

    return _kernel("LayerNormKernel", bprop)


def _split_heads(num_heads: int, groups: int, bprop=None, entry="SplitHeadsKernel") -> ops.Custom:
    """x [B, N, G * C] (and what else `entry` takes) -> G tensors [B, H, N, C / H] (H = num_heads);
    one tensor when G is 1."""
    def shapes(x, *_):
        heads = [x[0], num_heads, x[1], x[2] // (groups * num_heads)]
        return tuple([heads] * groups) if groups > 1 else heads

    return _kernel(entry, bprop, shapes, lambda x, *_: (x,) * groups if groups > 1 else x)


def _merge_heads(bprop=None) -> ops.Custom:
    """G tensors [B, H, N, d] -> [B, N, G * H * d]: _split_heads inverted."""
    def shape(*heads):
        b, h, n, d = heads[0]
        return [b, n, len(heads) * h * d]

    return _kernel("MergeHeadsKernel", bprop, shape, lambda *heads: heads[0])


def bias_split_heads_kernel(num_heads: int) -> ops.Custom:
    """(qkv [B, N, 3C], bias [3C], scale [3]) float32 -> q, k, v [B, H, N, C / H], each the
    heads of (qkv + bias) * its scale; no backward (inference)."""
    return _split_heads(num_heads, 3, entry="BiasSplitHeadsKernel")


def head_layout_kernels(num_heads: int):
    """Attention's two layout changes, each with the other as its backward:
    qkv [B, N, 3C] -> q, k, v [B, H, N, C / H], and heads [B, H, N, d] -> tokens [B, N, H d]."""
    merge_three, split_one = _merge_heads(), _split_heads(num_heads, 1)

    def split_bprop(x, out, dout):
        return (merge_three(*dout),)

    def merge_bprop(heads, out, dout):
        return (split_one(dout),)

    return _split_heads(num_heads, 3, split_bprop), _merge_heads(merge_bprop)


def patch_layout_kernel(in_chans: int, img_size: int, patch_size: int) -> ops.Custom:
    """image [B, C, H, W] -> patches [B (H / p) (W / p), C p p], each row one p x p patch flattened as
    (channel, row, column); the backward puts the rows back into an image."""
    grid = img_size // patch_size
    patches_image = _kernel("PatchesImageKernel", outputs=lambda rows: [rows[0] // (grid * grid), in_chans,
                                                                        img_size, img_size], dtypes=_first_input)

    def bprop(image, out, dout):
        return (patches_image(dout),)

    return _kernel("ImagePatchesKernel", bprop, lambda image: [image[0] * grid * grid, in_chans * patch_size ** 2],
                   _first_input)


def eps_tensor(eps: float) -> ms.Tensor:
    return ms.Tensor([eps], ms.float32)


class CpuLayerNorm(nn.Cell):
    """A LayerNorm's function (its own weight and bias) through the C++ kernel, in float32."""

    def __init__(self, norm: LayerNorm):
        super().__init__()
        self.weight, self.bias = norm.weight, norm.bias
        self.kernel = layer_norm_kernel()
        self.eps = eps_tensor(norm.epsilon)

    def construct(self, x):
        return self.kernel(x.astype(ms.float32), self.weight, self.bias, self.eps).astype(x.dtype)


class CpuGELU(nn.Cell):
    """Exact GELU through the C++ kernel, in float32."""

    def __init__(self):
        super().__init__()
        self.kernel = gelu_kernel()

    def construct(self, x):
        return self.kernel(x.astype(ms.float32)).astype(x.dtype)


class CpuPatchEmbed(PatchEmbed):
    """A PatchEmbed (its own projection) that cuts the image into patches with the C++ layout kernel."""

    def __init__(self, embed: PatchEmbed):  # pylint: disable=super-init-not-called
        nn.Cell.__init__(self)
        self.img_size, self.patch_size, self.in_chans = embed.img_size, embed.patch_size, embed.in_chans
        self.grid_size, self.num_patches = embed.grid_size, embed.num_patches
        self.proj = embed.proj
        self.to_patches = patch_layout_kernel(self.in_chans, self.img_size, self.patch_size)

    def construct(self, x):
        tokens = self.proj(self.to_patches(x))
        return tokens.reshape(x.shape[0], self.num_patches, -1)


class CpuAttention(Attention):
    """An Attention (its own qkv and proj) whose head layouts are the C++ kernels and whose
    proportional-attention bias is repeated by an outer product with ones: MindSpore's CPU
    broadcasting Add keeps index tables of 8-16 bytes per output value for as long as the
    graph lives (over a GB for DeiT-S at batch 64)."""

    def __init__(self, attn: Attention):  # pylint: disable=super-init-not-called
        nn.Cell.__init__(self)
        self.num_heads, self.scale = attn.num_heads, attn.scale
        self.qkv, self.proj, self.scores = attn.qkv, attn.proj, attn.scores
        self.split_heads, self.merge_heads = head_layout_kernels(attn.num_heads)

    def heads(self, x):
        return self.split_heads(self.qkv(x))

    def probabilities(self, q, k, size=None):
        logits = self.scores(q * self.scale, k)
        if size is not None:
            b, h, n, m = logits.shape
            log_size = ops.log(size.astype(ms.float32)).reshape(b, 1, m).astype(logits.dtype)
            logits = logits + ops.bmm(ops.ones((b, h * n, 1), logits.dtype), log_size).reshape(b, h, n, m)
        return ops.softmax(logits, axis=-1)

    def combine(self, probs, v):
        return self.proj(self.merge_heads(ops.matmul(probs, v)))


def _cpu_layer(cell):
    if isinstance(cell, LayerNorm):
        return CpuLayerNorm(cell)
    if isinstance(cell, GELU):
        return CpuGELU()
    if isinstance(cell, PatchEmbed) and not isinstance(cell, CpuPatchEmbed):
        return CpuPatchEmbed(cell)
    if isinstance(cell, Attention) and not isinstance(cell, CpuAttention):
        return CpuAttention(cell)
    return None


def with_cpu_layers(net: nn.Cell) -> nn.Cell:
    """`net` with its LayerNorms, GELUs, patch embedding and attention running the C++ kernels
    (forward and backward); swapped in place, returns `net`."""
    replace_cells(net, _cpu_layer)
    return net
