"""The reductions that token reduction's decisions are made of, in float32.

Each casts its input to float32 first, inside the function: under AMP O2/O3 in graph mode
the float arguments of every Cell method arrive as float16, while a plain function's
arguments are passed as they are, so a decision computed here is float32 arithmetic
whatever the AMP level (the inputs may carry AMP's float16 rounding)."""
import mindspore as ms
from mindspore import ops


def sum_heads(t):
    """t [B, H, N, d] -> sum over heads [B, N, d], float32."""
    return t.astype(ms.float32).sum(axis=1)


def concat_head_norm(v):
    """L2 norm of each token's value with all heads concatenated: v [B, H, N, d] -> [B, N], float32."""
    v = v.astype(ms.float32)
    return ops.sqrt((v * v).sum(axis=(1, 3)))


def l2_normalize(t):
    """t [..., d] / its L2 norm over the last axis, float32."""
    t = t.astype(ms.float32)
    return t / ops.sqrt((t * t).sum(axis=-1, keepdims=True))  # not rsqrt: MindSpore's ONNX exporter lacks it
