"""ToMe bipartite soft matching, with static shapes.

Tokens at even positions (set A) are matched to their most similar token at
odd positions (set B); the r A tokens with the strongest match are merged into
their B partner.  CLS (A index 0) never merges; with a distillation token
(B index 0) nothing merges into it.
"""
import mindspore as ms
from mindspore import ops

from .gather import take_tokens, scatter_add_tokens

NEG_INF = float("-inf")


def bipartite_matching(metric, r: int, distill_token: bool = False):
    """Decide the merges.  metric [B, N, d] -> (unmerged [B, Na - r], src [B, r],
    dst [B, r]): indices into A (even tokens, Na = ceil(N/2)) of the tokens that
    stay, sorted by position; A indices merged away; B indices they merge into."""
    metric = metric.astype(ms.float32)
    metric = metric / ops.norm(metric, dim=-1, keepdim=True)
    a, b = metric[:, ::2, :], metric[:, 1::2, :]
    scores = ops.bmm(a, b.transpose(0, 2, 1))
    na, nb = scores.shape[1], scores.shape[2]
    protected = ops.arange(na).reshape(1, na, 1) == 0
    if distill_token:
        protected = ops.logical_or(protected, ops.arange(nb).reshape(1, 1, nb) == 0)
    scores = ops.masked_fill(scores, protected, NEG_INF)

    best_score, best_partner = ops.max(scores, axis=-1)
    _, by_strength = ops.sort(best_score, axis=-1, descending=True)
    src = by_strength[:, :r]
    unmerged, _ = ops.sort(by_strength[:, r:].astype(ms.float32), axis=-1)
    dst = ops.gather_elements(best_partner, 1, src)
    return unmerged.astype(ms.int32), src, dst


def merge_tokens(x, unmerged, src, dst, distill_token: bool = False, union: bool = False):
    """Apply a matching: x [B, N, C] -> [B, N - r, C] ordered [unmerged A, all B]
    (with a distillation token: [A0, B0, A1.., B1..]).  Merged tokens are summed
    into their partner, or with `union` (0/1 source rows) combined by max."""
    a, b = x[:, ::2, :], x[:, 1::2, :]
    kept = take_tokens(a, unmerged)
    merged = scatter_add_tokens(b, dst, take_tokens(a, src))
    if union:
        merged = ops.minimum(merged, 1.0)
    if distill_token:
        return ops.concat((kept[:, :1], merged[:, :1], kept[:, 1:], merged[:, 1:]), axis=1)
    return ops.concat((kept, merged), axis=1)


def merge_weighted(x, size, unmerged, src, dst, distill_token: bool = False):
    """Size-weighted average of merged tokens; sizes add up.  x [B, N, C],
    size [B, N, 1] float32 -> x [B, N - r, C] (x's dtype), size [B, N - r, 1]."""
    channels = x.shape[2]
    weighted = ops.concat((x.astype(ms.float32) * size, size), axis=2)
    merged = merge_tokens(weighted, unmerged, src, dst, distill_token)
    new_size = merged[:, :, channels:]
    return (merged[:, :, :channels] / new_size).astype(x.dtype), new_size
