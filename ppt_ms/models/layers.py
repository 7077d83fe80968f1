"""Building blocks of a ViT whose parameter names equal timm's state_dict keys."""
import numpy as np
import mindspore as ms
from mindspore import nn, ops, Parameter
from mindspore.common.initializer import initializer, TruncatedNormal, Zero, One


def dense(in_features: int, out_features: int, bias: bool = True) -> nn.Dense:
    """Linear layer initialised as timm's ViT: truncated normal std 0.02, zero bias."""
    return nn.Dense(in_features, out_features, weight_init=TruncatedNormal(0.02),
                    bias_init="zeros", has_bias=bias)


class LayerNorm(nn.LayerNorm):
    """LayerNorm over the last axis with timm's parameter names (weight, bias).

    An nn.LayerNorm, so that MindSpore's AMP treats it as one: O2 keeps it in float32
    (its keep-float32 list goes by class).  nn.LayerNorm's own constructor is not called:
    it names the parameters gamma and beta, and its signature changes after 2.9."""

    def __init__(self, dim: int, eps: float = 1e-6):  # pylint: disable=super-init-not-called
        nn.Cell.__init__(self)
        self.normalized_shape = (dim,)
        self.epsilon = eps
        self.weight = Parameter(initializer(One(), (dim,), ms.float32), name="weight")
        self.bias = Parameter(initializer(Zero(), (dim,), ms.float32), name="bias")
        self.layer_norm = ops.LayerNorm(begin_norm_axis=-1, begin_params_axis=-1, epsilon=eps)

    def construct(self, x):
        y, _, _ = self.layer_norm(x, self.weight.astype(x.dtype), self.bias.astype(x.dtype))
        return y

    def extend_repr(self):
        return "normalized_shape=%s, eps=%g" % (self.normalized_shape, self.epsilon)


class GELU(nn.Cell):
    """Exact GELU, x Phi(x) = x/2 (1 + erf(x / sqrt 2)), with its derivative written out,
    Phi(x) + x phi(x): MindSpore 2.10 differentiates Erf with PowTensorScalar, a primitive
    documented for Ascend only, and this backward uses Exp, Mul and Add."""

    def construct(self, x):
        return 0.5 * x * (1.0 + ops.erf(x * SQRT_HALF))

    def bprop(self, x, out, dout):
        cdf = 0.5 * (1.0 + ops.erf(x * SQRT_HALF))
        pdf = ops.exp(-0.5 * x * x) * INV_SQRT_2PI
        return (dout * (cdf + x * pdf),)


SQRT_HALF = 0.7071067811865476
INV_SQRT_2PI = 0.3989422804014327


class QuickGELU(nn.Cell):
    """x * sigmoid(1.702 x), the GELU approximation of OpenAI's CLIP weights (timm's 'quick_gelu')."""

    def construct(self, x):
        return x * ops.sigmoid(1.702 * x)


class GELUTanh(nn.Cell):
    """GELU's tanh approximation, x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): MindSpore's nn.GELU
    default, so mindcv's ViTs (timm's 'gelu_tanh').  MindSpore's GeLU primitive (within 5e-7 of
    the float64 function here), not Tanh: the CPU Tanh kernel is off by up to 1e-4."""

    def construct(self, x):
        return ops.gelu(x, approximate="tanh")


ACTIVATIONS = {"gelu": GELU, "quick_gelu": QuickGELU, "gelu_tanh": GELUTanh}


def activation(name: str) -> nn.Cell:
    """The MLP activation by timm's act_layer name."""
    if name not in ACTIVATIONS:
        raise ValueError("act_layer %r is not one of %s" % (name, ", ".join(ACTIVATIONS)))
    return ACTIVATIONS[name]()


class LayerScale(nn.Cell):
    """x * gamma, a learned per-channel scale on a residual branch (CaiT, DeiT III, DINOv2);
    gamma [C] starts at init_values."""

    def __init__(self, dim: int, init_values: float):
        super().__init__()
        self.gamma = Parameter(ms.Tensor(np.full((dim,), init_values, np.float32)), name="gamma")

    def construct(self, x):
        return x * self.gamma.astype(x.dtype)


class Mlp(nn.Cell):
    """fc1 -> activation (exact GELU by default) -> fc2; [B, N, C] -> [B, N, C]."""

    def __init__(self, dim: int, hidden_dim: int, act_layer: str = "gelu"):
        super().__init__()
        self.fc1 = dense(dim, hidden_dim)
        self.act = activation(act_layer)
        self.fc2 = dense(hidden_dim, dim)

    def construct(self, x):
        return self.fc2(self.act(self.fc1(x)))


class DropPath(nn.Cell):
    """Stochastic depth: in training, zero a sample's residual branch with
    probability `rate` and scale the kept ones by 1/(1-rate)."""

    def __init__(self, rate: float = 0.0):
        super().__init__()
        self.keep = 1.0 - rate
        self.active = rate > 0.0

    def construct(self, x):
        if not self.active or not self.training:
            return x
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        mask = ops.floor(self.keep + ops.rand(shape, dtype=ms.float32))
        return x * (mask / self.keep).astype(x.dtype)


class PatchEmbed(nn.Cell):
    """Image [B, 3, H, W] -> patch tokens [B, (H/p)*(W/p), C], row-major.

    The convolution with kernel = stride = p, written as what it computes: cut the
    image into p x p patches (`patches`), flatten each (channel, row, column) and
    multiply by the kernel flattened the same way.  The parameters keep timm's names
    and the conv layout (proj.weight [C, 3, p, p], proj.bias [C]), so checkpoints
    load as they are.
    """

    def __init__(self, img_size: int, patch_size: int, in_chans: int, dim: int, bias: bool = True):
        super().__init__()
        if img_size % patch_size:
            raise ValueError("img_size %d is not a multiple of patch_size %d" % (img_size, patch_size))
        self.img_size = img_size
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = PatchProjection(in_chans, dim, patch_size, bias)

    def construct(self, x):
        b = x.shape[0]
        (gh, gw), p = self.grid_size, self.patch_size
        patches = x.reshape(b, self.in_chans, gh, p, gw, p).transpose(0, 2, 4, 1, 3, 5)
        tokens = self.proj(patches.reshape(b * gh * gw, self.in_chans * p * p))
        return tokens.reshape(b, gh * gw, -1)


class PatchProjection(nn.Cell):
    """Flattened patches [M, 3*p*p] -> [M, C] with a conv kernel [C, 3, p, p] and bias [C]
    (none in CLIP, whose patch embedding has no bias)."""

    def __init__(self, in_chans: int, dim: int, patch_size: int, bias: bool = True):
        super().__init__()
        self.weight = Parameter(initializer(TruncatedNormal(0.02), (dim, in_chans, patch_size, patch_size),
                                            ms.float32), name="weight")
        self.has_bias = bias
        self.bias = Parameter(initializer(Zero(), (dim,), ms.float32), name="bias") if bias else None
        self.matmul = ops.MatMul(transpose_b=True)
        self.bias_add = ops.BiasAdd()

    def construct(self, patches):
        kernel = self.weight.reshape(self.weight.shape[0], -1).astype(patches.dtype)
        out = self.matmul(patches, kernel)
        if self.has_bias:
            out = self.bias_add(out, self.bias.astype(patches.dtype))
        return out
