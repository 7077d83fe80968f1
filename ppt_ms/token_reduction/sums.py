"""Sums and broadcasts written as matmuls with a ones vector.

MindSpore's CPU reduce kernels (ReduceSum, Norm) run several times slower than the
matmul, over any axis.  Its CPU kernels that broadcast (Add, Mul, BroadcastTo) keep
index tables of 8 to 16 bytes per output value for as long as the compiled graph
lives, 2-4x their output: over a GB for ToMe's proportional attention in DeiT-S at
batch 64.  An outer product with ones repeats the values exactly (each times 1.0,
nothing summed), keeps no tables and ran faster."""
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


def repeat_rows(t, rows: int):
    """t [B, 1, K] -> [B, rows, K], every row a copy of t's: ones [B, rows, 1] @ t."""
    return ops.bmm(ops.ones((t.shape[0], rows, 1), t.dtype), t)


def repeat_columns(t, columns: int):
    """t [B, M, 1] -> [B, M, columns], every column a copy of t's: t @ ones [B, 1, columns]."""
    return ops.bmm(t, ops.ones((t.shape[0], 1, columns), t.dtype))
