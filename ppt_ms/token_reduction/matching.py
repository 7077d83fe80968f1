"""ToMe bipartite soft matching, with static shapes.

Tokens at even positions (set A) are matched to their most similar token at
odd positions (set B); the r A tokens with the strongest match are merged into
their B partner.  Which tokens take part and which are protected: prefix.py.
"""
import numpy as np
import mindspore as ms
from mindspore import ops

from .sums import l2_normalize

NEG_INF = float("-inf")
_similarity = ops.BatchMatMul(transpose_b=True)  # a [B, Na, d], b [B, Nb, d] -> a b^T, no Transpose kernel


def bipartite_positions(num_tokens: int, start: int = 0):
    """Constant index tensors of the A and B token positions, [Na], [Nb]: tokens start, start + 2, ...
    and start + 1, start + 3, ... (the matched tokens begin at `start`)."""
    return (ms.Tensor(np.arange(start, num_tokens, 2, dtype=np.int32)),
            ms.Tensor(np.arange(start + 1, num_tokens, 2, dtype=np.int32)))


def _minus_inf_first(n: int):
    """[-inf, 0, ..., 0] of length n: added to similarities (finite), it sets the
    first to -inf.  Not masked_fill: MindSpore's ONNX exporter has no converter for it."""
    return ops.concat((ops.full((1,), NEG_INF, dtype=ms.float32), ops.zeros((n - 1,), ms.float32)))


def bipartite_matching(metric, r: int, a_positions, b_positions, class_token: bool = True,
                       distill_token: bool = False):
    """Decide the merges.  metric [B, N, d] -> (unmerged [B, Na - r], src [B, r],
    dst [B, r]): indices into A of the tokens that stay; A indices merged away,
    strongest match first; B indices they merge into.  a_positions, b_positions
    come from `bipartite_positions`.  With `class_token`, A 0 never merges and the
    unmerged tokens are in A order; without, they stay ranked by their best match, and
    when all of A merges (r = Na) unmerged is None."""
    metric = l2_normalize(metric)
    # a gather, not metric[:, ::2]: CPU's StridedSliceGrad fails on step-2 slices
    a = ops.gather(metric, a_positions, 1)
    b = ops.gather(metric, b_positions, 1)
    scores = _similarity(a, b)
    na, nb = scores.shape[1], scores.shape[2]
    if distill_token:
        scores = scores + _minus_inf_first(nb).reshape(1, 1, nb)

    best_score, best_partner = ops.max(scores, axis=-1)
    if class_token:
        # CLS's whole row at -inf, as ToMe writes it, leaves exactly this after the max
        best_score = best_score + _minus_inf_first(na).reshape(1, na)
    # full-length topk, not sort: MindSpore's ONNX exporter gives Sort a wrong k
    _, by_strength = ops.topk(best_score, na)
    src = ops.narrow(by_strength, 1, 0, r)
    dst = ops.gather_elements(best_partner, 1, src).astype(ms.int32)
    if r == na:  # every A token merges (no protected token): None, not an empty tensor
        return None, src, dst
    unmerged = ops.narrow(by_strength, 1, r, na - r)
    if class_token:
        unmerged, _ = ops.topk(unmerged.astype(ms.float32), na - r, largest=False)
    return unmerged.astype(ms.int32), src, dst


def merge_layout(unmerged, src, dst, b_positions, distill_token: bool = False, unmatched=None):
    """Where a matching puts the tokens, as positions in the input sequence.

    Output order is [tokens before the matched ones (`unmatched`, [P] positions
    0..P-1, or None), unmerged A tokens (None: none), all B tokens] (with a distillation
    token: [A0, B0, A1.., B1..]).  Returns keep [B, N - r] (input position of
    each output token), src_pos [B, r] (input positions of the merged-away A
    tokens) and dst_slot [B, r] (the output slot each of them is added into).
    With P tokens before the matched ones, A index a sits at position P + 2a,
    B index j at P + 2j + 1.
    """
    b = src.shape[0]
    kept_a = 0 if unmerged is None else unmerged.shape[1]
    nb = b_positions.shape[0]
    start = 0 if unmatched is None else unmatched.shape[0]
    b_positions = ops.broadcast_to(b_positions.reshape(1, nb), (b, nb))
    if unmerged is None:
        keep = b_positions
    elif distill_token:
        a_positions = 2 * unmerged + start
        keep = ops.concat((a_positions[:, :1], b_positions[:, :1], a_positions[:, 1:], b_positions[:, 1:]), axis=1)
    else:
        keep = ops.concat((2 * unmerged + start, b_positions), axis=1)
    if unmatched is not None:
        keep = ops.concat((ops.broadcast_to(unmatched.reshape(1, start), (b, start)), keep), axis=1)
    return keep, 2 * src + start, dst + kept_a + start
