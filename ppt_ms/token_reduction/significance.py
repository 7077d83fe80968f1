"""PPT's token significance (ATS score) and its spread, in float32 (see sums.py)."""
import mindspore as ms
from mindspore import ops

from .sums import concat_head_norm, sum_heads

CLS_SCORE = 2.0  # above any normalised score, so CLS always ranks first


def significance_scores(probs, v):
    """s_j = (sum over heads of the CLS row attn[:, h, 0, j]) * ||v_j||_2, where v_j
    is token j's value with all heads concatenated; the N-1 non-CLS scores are
    normalised to sum 1 and CLS gets the constant 2.

    probs [B, H, N, N], v [B, H, N, d] -> scores [B, N] float32.
    """
    b, _, n, _ = probs.shape
    cls_attention = sum_heads(ops.narrow(probs, 2, 0, 1)).reshape(b, n)
    patch_scores = _without_cls(cls_attention * concat_head_norm(v))
    patch_scores = patch_scores / patch_scores.sum(axis=1, keepdims=True)
    cls_score = ops.full((b, 1), CLS_SCORE, dtype=ms.float32)
    return ops.concat((cls_score, patch_scores), axis=1)


def score_variance(scores):
    """Unbiased variance (divide by count - 1) of the non-CLS scores: [B, N] -> [B], float32.
    As the mean of squared deviations, not E[x^2] - E[x]^2, which cancels; from sums, not
    ops.var: MindSpore's ONNX exporter has no ReduceStd."""
    patch_scores = _without_cls(scores.astype(ms.float32))
    n = patch_scores.shape[1]
    deviation = patch_scores - patch_scores.sum(axis=1, keepdims=True) / n
    return (deviation * deviation).sum(axis=1) / (n - 1)


def _without_cls(t):
    """[B, N] -> [B, N - 1], token 0 dropped."""
    return ops.narrow(t, 1, 1, t.shape[1] - 1)
