"""Sums written as matmuls with a ones vector: MindSpore's CPU reduce kernels
(ReduceSum, Norm) run several times slower than the matmul, over any axis."""
import mindspore as ms
from mindspore import ops


def sum_heads(t):
    """t [B, H, N, d] -> sum over heads [B, N, d], float32."""
    b, h, n, d = t.shape
    ones = ops.ones((b, 1, h), ms.float32)  # batched already: a [1, H] matmul would add a BroadcastTo kernel
    return ops.bmm(ones, t.astype(ms.float32).reshape(b, h, n * d)).reshape(b, n, d)


def sum_last(t):
    """t [..., d] -> sum over the last axis [..., 1], float32."""
    d = t.shape[-1]
    rows = t.astype(ms.float32).reshape(-1, d)
    return ops.matmul(rows, ops.ones((d, 1), ms.float32)).reshape(t.shape[:-1] + (1,))


def concat_head_norm(v):
    """L2 norm of each token's value with all heads concatenated:
    v [B, H, N, d] -> [B, N], float32."""
    b, _, n, _ = v.shape
    v = v.astype(ms.float32)
    return ops.sqrt(sum_last(sum_heads(v * v))).reshape(b, n)


def l2_normalize(t):
    """t [..., d] / its L2 norm over the last axis, float32."""
    t = t.astype(ms.float32)
    return t / ops.sqrt(sum_last(t * t))  # not rsqrt: MindSpore's ONNX exporter lacks it
