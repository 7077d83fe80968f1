"""The reduction step of a block, one Cell per method.

A block calls its reducer with what attention produced: (x [B, N, C],
size [B, N, 1] int32, source [B, N, N0], k, v [B, H, N, d], probs [B, H, N, N])
-> (x, size, source with N - r tokens, decisions [B, 2] float32).  The reducer
computes what its method needs, ToMe's metric (the keys summed over heads) and
PPT's significance scores, and passes them to `step`, the method's decision and
gather/merge, which tests drive directly.  decisions is (1 if pooled, score
variance) per image for PPT, zeros otherwise.  `source` is only touched when
tracing is on; otherwise it is a placeholder passed through unchanged.

Mixed precision.  Under AMP O2/O3 MindSpore casts the float arguments of
every Cell method to float16 (graph mode), or every op's inputs inside a
float16 Cell (PyNative).  So a reducer keeps itself float32 whatever AMP asks
(`add_flags_recursive`: its methods' arguments are cast to float32), sizes
cross Cell boundaries as int32 token counts (exact at any size, and never
cast), and every decision (scores, variance, threshold test, ranking, the
merge weights) is float32 arithmetic (sums.py casts first).  Only the
attention outputs it starts from carry AMP's rounding.

Each method comes down to the same two moves: gather the tokens that stay
(`keep`, in output order) and add each merged token into its partner's slot
(`merge_tokens`).  Pruning only gathers; PPT picks, per image, the pruning
or the pooling `keep` indices, and switches the merges off for pruned images,
so the big tensors are gathered once whatever the branch.
"""
import numpy as np
import mindspore as ms
from mindspore import nn, ops

from .gather import add_into, take_tokens
from .matching import bipartite_matching, bipartite_positions, merge_layout
from .prefix import PrefixTokens
from .pruning import keep_by_score
from .significance import score_variance, significance_scores
from .sums import sum_heads

def merge_tokens(x, size, source, keep, src_pos, dst_slot, active, trace_source: bool, take=take_tokens,
                 add=add_into):
    """The tokens `keep` [B, N - r]; token src_pos[:, i] is merged into output
    slot dst_slot[:, i] as a size-weighted mean, sizes (float32) add up and
    source rows are united.  `active` [B] (0/1 float) switches an image's
    merges off; None means all on.  take/add: the index functions (gather.py).

    A slot s that receives tokens i becomes x_s + sum_i size_i / size'_s * (x_i - x_s)
    with size'_s = size_s + sum_i size_i: the weighted mean (size_s x_s +
    sum_i size_i x_i) / size'_s, written so that only the r merged rows are
    computed instead of weighting and dividing all N - r tokens.
    """
    src_size = take(size, src_pos)
    if active is not None:
        src_size = src_size * active.reshape(-1, 1, 1)
    size = add(take(size, keep), dst_slot, src_size)
    share = src_size / take(size, dst_slot)
    dst_pos = take(keep, dst_slot)
    delta = take(x, src_pos).astype(ms.float32) - take(x, dst_pos).astype(ms.float32)
    merged = add(take(x, keep), dst_slot, delta * share)
    if trace_source:
        src_rows = take(source, src_pos)
        if active is not None:
            src_rows = src_rows * active.reshape(-1, 1, 1)
        source = ops.minimum(add(take(source, keep), dst_slot, src_rows), 1.0)
    return merged, size, source


def tome_metric(k):
    """ToMe's matching metric: the keys summed over heads, [B, N, d] (the mean's scale cancels in
    the cosine similarity)."""
    return sum_heads(k)


def pooling_plan(metric, r: int, matching):
    """ToMe's matching as positions: (keep [B, N - r], src_pos [B, r], dst_slot [B, r]).
    `matching` is a reducer's (a_positions, b_positions, class_token, distill_token, unmatched).
    Decisions carry no gradient (ToMe matches under torch.no_grad)."""
    a_positions, b_positions, class_token, distill_token, unmatched = matching
    unmerged, src, dst = bipartite_matching(ops.stop_gradient(metric), r, a_positions, b_positions, class_token,
                                            distill_token)
    return merge_layout(unmerged, src, dst, b_positions, distill_token, unmatched)


def pruning_plan(scores, num_out: int, prefix_rank):
    """The `num_out` tokens to keep, best first.  prefix_rank [P]: scores above any other,
    descending, that put the P prefix tokens first in their order (None: the class token
    alone, already first by its score)."""
    scores = ops.stop_gradient(scores)
    if prefix_rank is not None:
        b, n = scores.shape
        p = prefix_rank.shape[0]
        scores = ops.concat((ops.broadcast_to(prefix_rank.reshape(1, p), (b, p)), ops.narrow(scores, 1, p, n - p)),
                            axis=1)
    return keep_by_score(scores, num_out)


def no_decisions(x):
    return ops.zeros((x.shape[0], 2), ms.float32)


def tome_step(x, size, source, metric, r, matching, trace_source, take, add):
    """Merge the r best-matched tokens -> (x, size, source, decisions)."""
    keep, src_pos, dst_slot = pooling_plan(metric, r, matching)
    x, size, source = merge_tokens(x, size, source, keep, src_pos, dst_slot, None, trace_source, take, add)
    return x, size, source, no_decisions(x)


def prune_step(x, size, source, scores, num_out, prefix_rank, trace_source, take):
    """Keep the num_out most significant tokens -> (x, size, source, decisions)."""
    keep = pruning_plan(scores, num_out, prefix_rank)
    if trace_source:
        source = take(source, keep)
    return take(x, keep), take(size, keep), source, no_decisions(x)


def ppt_step(x, size, source, metric, scores, r, threshold, matching, scored_from, prefix_rank, trace_source,
             take, add):
    """Per image: pool if the variance of its scores is below `threshold`, else prune
    -> (x, size, source, decisions [B, 2] = (1 if pooled, variance))."""
    variance = score_variance(ops.stop_gradient(scores), scored_from)
    pooled = variance < threshold
    keep_pool, src_pos, dst_slot = pooling_plan(metric, r, matching)
    keep = ops.where(pooled.reshape(-1, 1), keep_pool, pruning_plan(scores, keep_pool.shape[1], prefix_rank))
    x, size, source = merge_tokens(x, size, source, keep, src_pos, dst_slot, pooled.astype(ms.float32),
                                   trace_source, take, add)
    return x, size, source, ops.stack((pooled.astype(ms.float32), variance), axis=1)


class TokenReducer(nn.Cell):
    """What every reducer knows: r, the tokens it receives and leaves, its prefix tokens
    (prefix.py) and the index functions `take` and `add` (gather.py; formulations may
    replace them).

    `construct` (what a block calls) computes the decision inputs from attention and runs
    `step`, the method's step function on given decision inputs (sizes as float32), which
    tests also drive."""

    def __init__(self, r: int, num_tokens: int, prefix: PrefixTokens, trace_source: bool):
        super().__init__()
        self.r = r
        self.num_out = num_tokens - r
        self.prefix = prefix
        self.trace_source = trace_source
        start = prefix.matched_from
        a_positions, b_positions = bipartite_positions(num_tokens, start)
        unmatched = ms.Tensor(np.arange(start, dtype=np.int32)) if start else None
        self.matching = (a_positions, b_positions, prefix.protects_class_token, prefix.distilled, unmatched)
        self.scored_from = prefix.scored_from
        self.prefix_rank = (ms.Tensor(np.arange(prefix.count + 1, 1, -1, dtype=np.float32))
                            if prefix.count > 1 else None)
        self.take = take_tokens
        self.add = add_into

    def add_flags_recursive(self, **flags):
        """AMP's low-precision flag becomes float32 here, as AMP O2 keeps nn.LayerNorm: the
        reducer then receives float32 inputs (graph mode) and runs float32 ops (PyNative)."""
        if flags.get("fp16") or flags.get("bf16"):
            flags = dict(flags, fp16=False, bf16=False, fp32=True)
        return super().add_flags_recursive(**flags)


class ToMeReducer(TokenReducer):
    """Bipartite soft matching on the attention keys, size-weighted merge."""

    def construct(self, x, size, source, k, v, probs):
        x, size, source, decisions = self.step(x, size.astype(ms.float32), source, tome_metric(k))
        return x, size.astype(ms.int32), source, decisions

    def step(self, x, size, source, metric):
        return tome_step(x, size, source, metric, self.r, self.matching, self.trace_source, self.take, self.add)


class PruneReducer(TokenReducer):
    """Drop the r least significant tokens; the rest follow in score order."""

    def construct(self, x, size, source, k, v, probs):
        x, size, source, decisions = self.step(x, size.astype(ms.float32), source,
                                               significance_scores(probs, v, self.scored_from))
        return x, size.astype(ms.int32), source, decisions

    def step(self, x, size, source, scores):
        return prune_step(x, size, source, scores, self.num_out, self.prefix_rank, self.trace_source, self.take)


class PPTReducer(TokenReducer):
    """Per image: pool (ToMe) when its significance scores are flat
    (variance < threshold), prune otherwise.  Both branches give N - r tokens,
    so each image picks its branch's indices with `where` and the batch keeps
    one shape."""

    def __init__(self, r: int, num_tokens: int, prefix: PrefixTokens, trace_source: bool, threshold: float):
        super().__init__(r, num_tokens, prefix, trace_source)
        self.threshold = threshold

    def construct(self, x, size, source, k, v, probs):
        x, size, source, decisions = self.step(x, size.astype(ms.float32), source, tome_metric(k),
                                               significance_scores(probs, v, self.scored_from))
        return x, size.astype(ms.int32), source, decisions

    def step(self, x, size, source, metric, scores):
        return ppt_step(x, size, source, metric, scores, self.r, self.threshold, self.matching, self.scored_from,
                        self.prefix_rank, self.trace_source, self.take, self.add)


REDUCERS = {"tome": ToMeReducer, "prune": PruneReducer, "ppt": PPTReducer}


def build_reducer(method: str, r: int, num_tokens: int, prefix: PrefixTokens = PrefixTokens(),
                  trace_source: bool = False, threshold: float = 7e-5):
    """The reducer Cell for one block of a token plan (a block receiving
    `num_tokens` tokens), or None when it keeps all tokens."""
    if method == "none" or r <= 0:
        return None
    if method not in REDUCERS:
        raise ValueError("unknown token reduction method %r" % method)
    if method in ("ppt", "prune") and not prefix.class_token:
        raise ValueError(SIGNIFICANCE_NEEDS_CLASS_TOKEN % method)
    if method == "ppt":
        return PPTReducer(r, num_tokens, prefix, trace_source, threshold)
    return REDUCERS[method](r, num_tokens, prefix, trace_source)


SIGNIFICANCE_NEEDS_CLASS_TOKEN = (
    "token_reduction.method %s ranks tokens by PPT's significance, the class token's attention to each token "
    "(times its value norm), and this model has no class token (e.g. SigLIP, which pools all tokens); use method "
    "tome, which needs no class token")
