"""Multi-head self-attention with proportional attention and the by-products
token reduction needs (ToMe's metric, PPT's significance scores)."""
from mindspore import nn, ops

from ..token_reduction.sums import repeat_rows
from .cpu_layers import head_layout_kernels
from .layers import dense


class Attention(nn.Cell):
    """Self-attention over [B, N, C] tokens with H heads of width d = C / H.

    Split into steps so a block can take the intermediate tensors it needs:
    `heads` gives q, k, v [B, H, N, d]; `probabilities` the softmax
    attention [B, H, N, N]; `combine` the projected output [B, N, C].
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, cpu_kernel: bool = False):
        super().__init__()
        if dim % num_heads:
            raise ValueError("embed_dim %d is not divisible by num_heads %d" % (dim, num_heads))
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = dense(dim, dim * 3, bias=qkv_bias)
        self.proj = dense(dim, dim)
        self.scores = ops.BatchMatMul(transpose_b=True)  # q k^T without a Transpose kernel
        self.cpu_kernel = cpu_kernel
        if cpu_kernel:
            self.split_heads, self.merge_heads = head_layout_kernels(num_heads)

    def heads(self, x):
        if self.cpu_kernel:
            return self.split_heads(self.qkv(x))
        b, n, c = x.shape
        h, d = self.num_heads, c // self.num_heads
        qkv = self.qkv(x).reshape(b, n, 3, h, d).transpose(2, 0, 3, 1, 4)
        # split, not unstack: MindSpore's ONNX exporter has no converter for Unstack
        q, k, v = (t.reshape(b, h, n, d) for t in ops.split(qkv, 1, axis=0))
        return q, k, v

    def probabilities(self, q, k, log_size=None):
        """softmax(q k^T * d^-0.5 [+ log(size) of the key token]); log_size is [B, 1, 1, N].
        The scale multiplies q ([B, H, N, d]) rather than the N x N logits: a smaller pass."""
        logits = self.scores(q * self.scale, k)
        if log_size is not None:
            b, h, n, m = logits.shape  # the bias repeated by a matmul, not broadcast (token_reduction/sums.py)
            logits = logits + repeat_rows(log_size.astype(logits.dtype).reshape(b, 1, m), h * n).reshape(b, h, n, m)
        return ops.softmax(logits, axis=-1)

    def combine(self, probs, v):
        out = ops.matmul(probs, v)
        if self.cpu_kernel:
            return self.proj(self.merge_heads(out))
        b, h, n, d = v.shape
        return self.proj(out.transpose(0, 2, 1, 3).reshape(b, n, h * d))

    def construct(self, x, log_size=None):
        q, k, v = self.heads(x)
        return self.combine(self.probabilities(q, k, log_size), v)
