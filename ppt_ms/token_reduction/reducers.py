"""The reduction step of a block, one Cell per method.

Every reducer maps (x [B, N, C], size [B, N, 1] float32, source [B, N, N0],
metric [B, N, d], scores [B, N]) to (x, size, source) with N - r tokens.
`decisions(scores)` reports per image (1 if pooled, score variance) as [B, 2]
(zeros for ToMe and pruning).  `source` is only touched when tracing is on;
otherwise it is a placeholder passed through unchanged.

Blocks call `reduce`, not the Cell itself: under AMP O2/O3 MindSpore casts
the float inputs of every Cell call to float16, and the sizes, scores and
variances must stay float32 (PPT's threshold 7e-5 is next to float16's
smallest normal number).

Each method comes down to the same two moves: gather the tokens that stay
(`keep`, in output order) and add merged tokens into their partners' slots
(a one-hot matmul).  Pruning only gathers; PPT picks, per image, the pruning
or the pooling `keep` indices, and switches the merges off for pruned images,
so the big tensors are gathered once whatever the branch.
"""
import mindspore as ms
from mindspore import nn, ops

from .gather import merge_matrix, take_tokens
from .matching import bipartite_matching, bipartite_positions, merge_layout
from .pruning import keep_by_score
from .significance import score_variance

DISTILL_SCORE = 1.5  # ranks the distillation token second, right after CLS (2)


def gather_and_merge(x, size, source, keep, src_pos, routing, weights, trace_source: bool):
    """Tokens `keep` plus the tokens `src_pos` routed into them by `routing`
    [B, N - r, r], averaged with `weights` ([B, N, 1]: the sizes where merging,
    1 where only gathering); sizes add up; source rows are united."""
    weighted = x.astype(ms.float32) * weights
    x = take_tokens(weighted, keep) + routed(routing, take_tokens(weighted, src_pos))
    new_size = take_tokens(size, keep) + routed(routing, take_tokens(size, src_pos))
    if trace_source:
        source = ops.minimum(take_tokens(source, keep) + routed(routing, take_tokens(source, src_pos)), 1.0)
    return x, new_size, source


def routed(routing, tokens):
    """routing [B, M, K] @ tokens [B, K, C], in the tokens' dtype (graph-mode AMP
    may have cast them to float16 despite the float32 casts above)."""
    return ops.bmm(routing.astype(tokens.dtype), tokens)


class _Reducer(nn.Cell):
    def __init__(self, r: int, num_tokens: int, num_prefix_tokens: int, trace_source: bool):
        super().__init__()
        self.r = r
        self.num_out = num_tokens - r
        self.distill_token = num_prefix_tokens == 2
        self.trace_source = trace_source
        self.a_positions, self.b_positions = bipartite_positions(num_tokens)

    def pooling_plan(self, metric):
        unmerged, src, dst = bipartite_matching(metric, self.r, self.a_positions, self.b_positions,
                                                self.distill_token)
        return merge_layout(unmerged, src, dst, self.b_positions, self.distill_token)

    def pruning_plan(self, scores):
        if self.distill_token:
            scores = ops.concat((scores[:, :1], ops.full_like(scores[:, :1], DISTILL_SCORE), scores[:, 2:]), axis=1)
        return keep_by_score(scores, self.num_out)

    def decisions(self, scores):
        return ops.zeros((scores.shape[0], 2), ms.float32)

    def construct(self, x, size, source, metric, scores):
        return self.reduce(x, size, source, metric, scores)


class ToMeReducer(_Reducer):
    """Bipartite soft matching on the attention keys, size-weighted merge."""

    def reduce(self, x, size, source, metric, scores):
        keep, src_pos, dst_slot = self.pooling_plan(metric)
        routing = merge_matrix(dst_slot, self.num_out)
        merged, size, source = gather_and_merge(x, size, source, keep, src_pos, routing, size, self.trace_source)
        return (merged / size).astype(x.dtype), size, source


class PruneReducer(_Reducer):
    """Drop the r least significant tokens; the rest follow in score order."""

    def reduce(self, x, size, source, metric, scores):
        keep = self.pruning_plan(scores)
        if self.trace_source:
            source = take_tokens(source, keep)
        return take_tokens(x, keep), take_tokens(size, keep), source


class PPTReducer(_Reducer):
    """Per image: pool (ToMe) when its significance scores are flat
    (variance < threshold), prune otherwise.  Both branches give N - r tokens,
    so each image picks its branch's indices with a select and the batch keeps
    one shape."""

    def __init__(self, r: int, num_tokens: int, num_prefix_tokens: int, trace_source: bool, threshold: float):
        super().__init__(r, num_tokens, num_prefix_tokens, trace_source)
        self.threshold = threshold

    def decisions(self, scores):
        variance = score_variance(scores)
        return ops.stack(((variance < self.threshold).astype(ms.float32), variance), axis=1)

    def reduce(self, x, size, source, metric, scores):
        pooled = score_variance(scores) < self.threshold
        keep_pool, src_pos, dst_slot = self.pooling_plan(metric)
        keep = ops.select(pooled.reshape(-1, 1), keep_pool, self.pruning_plan(scores))
        routing = merge_matrix(dst_slot, self.num_out, pooled.astype(ms.float32))
        weights = ops.select(pooled.reshape(-1, 1, 1), size, ops.ones_like(size))
        merged, size, source = gather_and_merge(x, size, source, keep, src_pos, routing, weights, self.trace_source)
        divisor = ops.select(pooled.reshape(-1, 1, 1), size, ops.ones_like(size))
        return (merged / divisor).astype(x.dtype), size, source


def build_reducer(method: str, r: int, num_tokens: int, num_prefix_tokens: int = 1, trace_source: bool = False,
                  threshold: float = 7e-5):
    """The reducer Cell for one block of a token plan (a block receiving
    `num_tokens` tokens), or None when it keeps all tokens."""
    if method == "none" or r <= 0:
        return None
    if method == "tome":
        return ToMeReducer(r, num_tokens, num_prefix_tokens, trace_source)
    if method == "prune":
        return PruneReducer(r, num_tokens, num_prefix_tokens, trace_source)
    if method == "ppt":
        return PPTReducer(r, num_tokens, num_prefix_tokens, trace_source, threshold)
    raise ValueError("unknown token reduction method %r" % method)
