"""Multi-head self-attention with proportional attention and the by-products
token reduction needs (ToMe's metric, PPT's significance scores)."""
import mindspore as ms
from mindspore import nn, ops

from .layers import dense


class Attention(nn.Cell):
    """Self-attention over [B, N, C] tokens with H heads of width d = C / H.

    Split into steps so a block can take the intermediate tensors it needs:
    `heads` gives q, k, v [B, H, N, d]; `probabilities` the softmax
    attention [B, H, N, N]; `combine` the projected output [B, N, C].
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError("embed_dim %d is not divisible by num_heads %d" % (dim, num_heads))
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = dense(dim, dim * 3, bias=qkv_bias)
        self.proj = dense(dim, dim)
        self.scores = ops.BatchMatMul(transpose_b=True)  # q k^T

    def heads(self, x):
        b, n, c = x.shape
        h, d = self.num_heads, c // self.num_heads
        qkv = self.qkv(x).reshape(b, n, 3, h, d).transpose(2, 0, 3, 1, 4)
        # split, not unstack: MindSpore's ONNX exporter has no converter for Unstack
        q, k, v = (t.reshape(b, h, n, d) for t in ops.split(qkv, 1, axis=0))
        return q, k, v

    def probabilities(self, q, k, size=None):
        """softmax(q k^T * d^-0.5 [+ log(size) of the key token]); size [B, N, 1] int32 token sizes.
        The scale multiplies q ([B, H, N, d]) rather than the N x N logits: a smaller pass."""
        logits = self.scores(q * self.scale, k)
        if size is not None:
            b, n = size.shape[:2]
            log_size = ops.log(size.astype(ms.float32)).reshape(b, 1, 1, n)
            logits = logits + log_size.astype(logits.dtype)
        return ops.softmax(logits, axis=-1)

    def combine(self, probs, v):
        b, h, n, d = v.shape
        return self.proj(ops.matmul(probs, v).transpose(0, 2, 1, 3).reshape(b, n, h * d))

    def construct(self, x, size=None):
        q, k, v = self.heads(x)
        return self.combine(self.probabilities(q, k, size), v)
