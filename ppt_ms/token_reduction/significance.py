"""PPT's token significance (ATS score) and its spread, in float32 (see sums.py)."""
import mindspore as ms
from mindspore import ops

from .sums import concat_head_norm, sum_heads

UNSCORED = 2.0  # the score of the class token and registers: above any normalised score


def significance_scores(probs, v, scored_from: int = 1):
    """s_j = (sum over heads of the class token's row attn[:, h, 0, j]) * ||v_j||_2, where
    v_j is token j's value with all heads concatenated.  The scores of the tokens from
    `scored_from` on (after the class token and any registers) are normalised to sum 1;
    the tokens before get the constant UNSCORED.

    probs [B, H, N, N], v [B, H, N, d] -> scores [B, N] float32.
    """
    b, _, n, _ = probs.shape
    cls_attention = sum_heads(ops.narrow(probs, 2, 0, 1)).reshape(b, n)
    patch_scores = _scored(cls_attention * concat_head_norm(v), scored_from)
    patch_scores = patch_scores / patch_scores.sum(axis=1, keepdims=True)
    unscored = ops.full((b, scored_from), UNSCORED, dtype=ms.float32)
    return ops.concat((unscored, patch_scores), axis=1)


def score_variance(scores, scored_from: int = 1):
    """Unbiased variance (divide by count - 1) of the scores from `scored_from` on: [B, N] -> [B],
    float32.  As the mean of squared deviations, not E[x^2] - E[x]^2, which cancels; from sums,
    not ops.var: MindSpore's ONNX exporter has no ReduceStd."""
    patch_scores = _scored(scores.astype(ms.float32), scored_from)
    n = patch_scores.shape[1]
    deviation = patch_scores - patch_scores.sum(axis=1, keepdims=True) / n
    return (deviation * deviation).sum(axis=1) / (n - 1)


def _scored(t, scored_from: int):
    """[B, N] -> [B, N - scored_from], the leading tokens dropped."""
    return ops.narrow(t, 1, scored_from, t.shape[1] - scored_from)
