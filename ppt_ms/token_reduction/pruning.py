"""Significance pruning: keep the N - r highest-scoring tokens, in score order."""
from mindspore import ops


def keep_by_score(scores, keep: int):
    """scores [B, N] -> indices [B, keep] of the best tokens, best first."""
    _, index = ops.topk(scores, keep, dim=-1, largest=True, sorted=True)
    return index
