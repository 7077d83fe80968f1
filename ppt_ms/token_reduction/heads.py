"""Sums over the head axis written as matmuls with a ones vector: MindSpore's
CPU reduce kernels over a middle axis run ~3x slower than the matmul."""
import mindspore as ms
from mindspore import ops


def sum_heads(t):
    """t [B, H, N, d] -> sum over heads [B, N, d], float32."""
    b, h, n, d = t.shape
    ones = ops.ones((1, h), ms.float32)
    return ops.matmul(ones, t.astype(ms.float32).reshape(b, h, n * d)).reshape(b, n, d)


def concat_head_norm(v):
    """L2 norm of each token's value with all heads concatenated:
    v [B, H, N, d] -> [B, N], float32."""
    b, h, n, d = v.shape
    v = v.astype(ms.float32)
    squares = ops.matmul(v * v, ops.ones((d, 1), ms.float32)).reshape(b, h, n)
    return ops.sqrt(ops.matmul(ops.ones((1, h), ms.float32), squares).reshape(b, n))
