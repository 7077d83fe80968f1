"""ToMe bipartite soft matching, with static shapes.

Tokens at even positions (set A) are matched to their most similar token at
odd positions (set B); the r A tokens with the strongest match are merged into
their B partner.  CLS (A index 0) never merges; with a distillation token
(B index 0) nothing merges into it.
"""
import numpy as np
import mindspore as ms
from mindspore import ops

from .sums import l2_normalize

NEG_INF = float("-inf")
_similarity = ops.BatchMatMul(transpose_b=True)  # a [B, Na, d], b [B, Nb, d] -> a b^T, no Transpose kernel


def bipartite_positions(num_tokens: int):
    """Constant index tensors of the A (even) and B (odd) token positions, [Na], [Nb]."""
    return (ms.Tensor(np.arange(0, num_tokens, 2, dtype=np.int32)),
            ms.Tensor(np.arange(1, num_tokens, 2, dtype=np.int32)))


def _minus_inf_first(n: int):
    """[-inf, 0, ..., 0] of length n: added to similarities (finite), it sets the
    first to -inf.  Not masked_fill: MindSpore's ONNX exporter has no converter for it."""
    return ops.concat((ops.full((1,), NEG_INF, dtype=ms.float32), ops.zeros((n - 1,), ms.float32)))


def bipartite_matching(metric, r: int, a_positions, b_positions, distill_token: bool = False):
    """Decide the merges.  metric [B, N, d] -> (unmerged [B, Na - r], src [B, r],
    dst [B, r]): indices into A (even tokens, Na = ceil(N/2)) of the tokens that
    stay, sorted by position; A indices merged away; B indices they merge into.
    a_positions, b_positions come from `bipartite_positions(N)`."""
    metric = l2_normalize(metric)
    # a gather, not metric[:, ::2]: CPU's StridedSliceGrad fails on step-2 slices
    a = ops.gather(metric, a_positions, 1)
    b = ops.gather(metric, b_positions, 1)
    scores = _similarity(a, b)
    na, nb = scores.shape[1], scores.shape[2]
    if distill_token:
        scores = scores + _minus_inf_first(nb).reshape(1, 1, nb)

    best_score, best_partner = ops.max(scores, axis=-1)
    # CLS's whole row at -inf, as ToMe writes it, leaves exactly this after the max
    best_score = best_score + _minus_inf_first(na).reshape(1, na)
    # full-length topk, not sort: MindSpore's ONNX exporter gives Sort a wrong k
    _, by_strength = ops.topk(best_score, na)
    src = ops.narrow(by_strength, 1, 0, r)
    unmerged, _ = ops.topk(ops.narrow(by_strength, 1, r, na - r).astype(ms.float32), na - r, largest=False)
    dst = ops.gather_elements(best_partner, 1, src).astype(ms.int32)
    return unmerged.astype(ms.int32), src, dst


def merge_layout(unmerged, src, dst, b_positions, distill_token: bool = False):
    """Where a matching puts the tokens, as positions in the input sequence.

    Output order is [unmerged A tokens, all B tokens] (with a distillation
    token: [A0, B0, A1.., B1..]).  Returns keep [B, N - r] (input position of
    each output token), src_pos [B, r] (input positions of the merged-away A
    tokens) and dst_slot [B, r] (the output slot each of them is added into).
    A index a sits at position 2a, B index j at 2j + 1.
    """
    b, kept_a = unmerged.shape
    nb = b_positions.shape[0]
    b_positions = ops.broadcast_to(b_positions.reshape(1, nb), (b, nb))
    a_positions = 2 * unmerged
    if distill_token:
        keep = ops.concat((a_positions[:, :1], b_positions[:, :1], a_positions[:, 1:], b_positions[:, 1:]), axis=1)
    else:
        keep = ops.concat((a_positions, b_positions), axis=1)
    return keep, 2 * src, dst + kept_a
