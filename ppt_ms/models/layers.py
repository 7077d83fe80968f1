"""Building blocks of a ViT whose parameter names equal timm's state_dict keys."""
import mindspore as ms
from mindspore import nn, ops, Parameter
from mindspore.common.initializer import initializer, TruncatedNormal, Zero, One

from .cpu_layers import eps_tensor, gelu_kernel, layer_norm_kernel, patch_layout_kernel


def dense(in_features: int, out_features: int, bias: bool = True) -> nn.Dense:
    """Linear layer initialised as timm's ViT: truncated normal std 0.02, zero bias."""
    return nn.Dense(in_features, out_features, weight_init=TruncatedNormal(0.02),
                    bias_init="zeros", has_bias=bias)


class LayerNorm(nn.Cell):
    """LayerNorm over the last axis with timm's parameter names (weight, bias).
    With `cpu_kernel`, it runs the C++ kernels of cpu_layers (same function)."""

    def __init__(self, dim: int, eps: float = 1e-6, cpu_kernel: bool = False):
        super().__init__()
        self.weight = Parameter(initializer(One(), (dim,), ms.float32), name="weight")
        self.bias = Parameter(initializer(Zero(), (dim,), ms.float32), name="bias")
        self.norm = ops.LayerNorm(begin_norm_axis=-1, begin_params_axis=-1, epsilon=eps)
        self.cpu_kernel = cpu_kernel
        if cpu_kernel:
            self.kernel = layer_norm_kernel()
            self.eps = eps_tensor(eps)

    def construct(self, x):
        if self.cpu_kernel:
            return self.kernel(x.astype(ms.float32), self.weight, self.bias, self.eps).astype(x.dtype)
        y, _, _ = self.norm(x, self.weight.astype(x.dtype), self.bias.astype(x.dtype))
        return y


class Mlp(nn.Cell):
    """fc1 -> exact GELU -> fc2; [B, N, C] -> [B, N, C].
    With `cpu_kernel`, the GELU runs as the C++ kernels of cpu_layers."""

    def __init__(self, dim: int, hidden_dim: int, cpu_kernel: bool = False):
        super().__init__()
        self.fc1 = dense(dim, hidden_dim)
        self.act = nn.GELU(approximate=False)
        self.fc2 = dense(hidden_dim, dim)
        self.cpu_kernel = cpu_kernel
        if cpu_kernel:
            self.gelu_kernel = gelu_kernel()

    def construct(self, x):
        x = self.fc1(x)
        if self.cpu_kernel:
            x = self.gelu_kernel(x.astype(ms.float32)).astype(x.dtype)
        else:
            x = self.act(x)
        return self.fc2(x)


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

    The convolution with kernel = stride = p, written exactly as what it computes: cut
    the image into p x p patches, flatten each (channel, row, column) and multiply by
    the kernel flattened the same way.  MindSpore's CPU Conv2D took 72 % of a DeiT-S
    forward on one Xeon; this takes a few ms.  The parameters keep timm's names and
    the conv layout (proj.weight [C, 3, p, p], proj.bias [C]), so checkpoints load as is.
    """

    def __init__(self, img_size: int, patch_size: int, in_chans: int, dim: int, cpu_kernel: bool = False):
        super().__init__()
        if img_size % patch_size:
            raise ValueError("img_size %d is not a multiple of patch_size %d" % (img_size, patch_size))
        self.cpu_kernel = cpu_kernel
        if cpu_kernel:
            self.to_patches = patch_layout_kernel(in_chans, img_size, patch_size)
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = PatchProjection(in_chans, dim, patch_size)

    def construct(self, x):
        b = x.shape[0]
        (gh, gw), p = self.grid_size, self.patch_size
        if self.cpu_kernel:
            patches = self.to_patches(x)
        else:
            patches = x.reshape(b, self.in_chans, gh, p, gw, p).transpose(0, 2, 4, 1, 3, 5)
            patches = patches.reshape(b * gh * gw, self.in_chans * p * p)
        tokens = self.proj(patches)
        return tokens.reshape(b, gh * gw, -1)


class PatchProjection(nn.Cell):
    """Flattened patches [M, 3*p*p] -> [M, C] with a conv kernel [C, 3, p, p] and bias [C]."""

    def __init__(self, in_chans: int, dim: int, patch_size: int):
        super().__init__()
        self.weight = Parameter(initializer(TruncatedNormal(0.02), (dim, in_chans, patch_size, patch_size),
                                            ms.float32), name="weight")
        self.bias = Parameter(initializer(Zero(), (dim,), ms.float32), name="bias")
        self.matmul = ops.MatMul(transpose_b=True)
        self.bias_add = ops.BiasAdd()

    def construct(self, patches):
        kernel = self.weight.reshape(self.weight.shape[0], -1).astype(patches.dtype)
        return self.bias_add(self.matmul(patches, kernel), self.bias.astype(patches.dtype))
