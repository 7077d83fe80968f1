"""How a ViT turns its final tokens into one vector: timm's global_pool.

- "token": the class token, x[:, 0];
- "avg": the plain mean of the tokens after the prefix tokens (after ToMe, of the
  tokens that are left, unweighted by their sizes, as timm computes it);
- "map": attention pooling (SigLIP), `AttentionPoolLatent` over those tokens.
"""
import mindspore as ms
from mindspore import nn, ops, Parameter
from mindspore.common.initializer import initializer, TruncatedNormal

from .layers import LayerNorm, Mlp, dense

GLOBAL_POOLS = ("token", "avg", "map")


class AttentionPoolLatent(nn.Cell):
    """timm's attention-pooling head: a learned latent query attends over the tokens, then a
    residual MLP.  [B, N, C] -> [B, C].  Parameter names are timm's (latent, q, kv, proj,
    norm, mlp.fc1, mlp.fc2)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, act_layer: str, norm_eps: float):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.latent = Parameter(initializer(TruncatedNormal(dim ** -0.5), (1, 1, dim), ms.float32), name="latent")
        self.q = dense(dim, dim)
        self.kv = dense(dim, 2 * dim)
        self.proj = dense(dim, dim)
        self.norm = LayerNorm(dim, norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer)
        self.scores = ops.BatchMatMul(transpose_b=True)

    def construct(self, x):
        b, n, c = x.shape
        h, d = self.num_heads, c // self.num_heads
        q = self.q(self.latent.astype(x.dtype)).reshape(1, h, 1, d)
        kv = self.kv(x).reshape(b, n, 2, h, d).transpose(2, 0, 3, 1, 4)
        k, v = (t.reshape(b, h, n, d) for t in ops.split(kv, 1, axis=0))
        probs = ops.softmax(self.scores(ops.broadcast_to(q * self.scale, (b, h, 1, d)), k), axis=-1)
        pooled = self.proj(ops.matmul(probs, v).reshape(b, c))
        return pooled + self.mlp(self.norm(pooled))
