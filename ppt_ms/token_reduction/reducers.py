"""The reduction step of a block, one Cell per method.

Every reducer maps (x [B, N, C], size [B, N, 1] float32, source [B, N, N0],
metric [B, N, d], scores [B, N]) to (x, size, source) with N - r tokens, and
reports per image (pooled?, variance) as stats [B, 2] (zeros for ToMe and
pruning).  `source` is only touched when tracing is on; otherwise it is a
placeholder passed through unchanged.
"""
import mindspore as ms
from mindspore import nn, ops

from .gather import take_tokens
from .matching import bipartite_matching, merge_tokens, merge_weighted
from .pruning import keep_by_score
from .significance import score_variance

DISTILL_SCORE = 1.5  # ranks the distillation token second, right after CLS (2)


class _Reducer(nn.Cell):
    def __init__(self, r: int, num_prefix_tokens: int, trace_source: bool):
        super().__init__()
        self.r = r
        self.distill_token = num_prefix_tokens == 2
        self.trace_source = trace_source

    def no_stats(self, x):
        return ops.zeros((x.shape[0], 2), ms.float32)


class ToMeReducer(_Reducer):
    """Bipartite soft matching on the attention keys, size-weighted merge."""

    def pool(self, x, size, source, metric):
        unmerged, src, dst = bipartite_matching(metric, self.r, self.distill_token)
        x, size = merge_weighted(x, size, unmerged, src, dst, self.distill_token)
        if self.trace_source:
            source = merge_tokens(source, unmerged, src, dst, self.distill_token, union=True)
        return x, size, source

    def construct(self, x, size, source, metric, scores):
        x, size, source = self.pool(x, size, source, metric)
        return x, size, source, self.no_stats(x)


class PruneReducer(_Reducer):
    """Drop the r least significant tokens; the rest follow in score order."""

    def prune(self, x, size, source, scores):
        if self.distill_token:
            scores = ops.concat((scores[:, :1], ops.full_like(scores[:, :1], DISTILL_SCORE), scores[:, 2:]), axis=1)
        keep = keep_by_score(scores, x.shape[1] - self.r)
        if self.trace_source:
            source = take_tokens(source, keep)
        return take_tokens(x, keep), take_tokens(size, keep), source

    def construct(self, x, size, source, metric, scores):
        x, size, source = self.prune(x, size, source, scores)
        return x, size, source, self.no_stats(x)


class PPTReducer(ToMeReducer, PruneReducer):
    """Per image: pool (ToMe) when its significance scores are flat
    (variance < threshold), prune otherwise.  Both branches give N - r tokens,
    so each image picks its branch with a select, and the batch keeps one shape."""

    def __init__(self, r: int, num_prefix_tokens: int, trace_source: bool, threshold: float):
        super().__init__(r, num_prefix_tokens, trace_source)
        self.threshold = threshold

    def construct(self, x, size, source, metric, scores):
        variance = score_variance(scores)
        pooled = variance < self.threshold
        per_image = pooled.reshape(-1, 1, 1)
        pooled_tokens = self.pool(x, size, source, metric)
        pruned_tokens = self.prune(x, size, source, scores)
        x = ops.select(per_image, pooled_tokens[0], pruned_tokens[0])
        size = ops.select(per_image, pooled_tokens[1], pruned_tokens[1])
        if self.trace_source:
            source = ops.select(per_image, pooled_tokens[2], pruned_tokens[2])
        stats = ops.stack((pooled.astype(ms.float32), variance), axis=1)
        return x, size, source, stats


def build_reducer(method: str, r: int, num_prefix_tokens: int = 1, trace_source: bool = False,
                  threshold: float = 7e-5):
    """The reducer Cell for one block of a token plan, or None when it keeps all tokens."""
    if method == "none" or r <= 0:
        return None
    if method == "tome":
        return ToMeReducer(r, num_prefix_tokens, trace_source)
    if method == "prune":
        return PruneReducer(r, num_prefix_tokens, trace_source)
    if method == "ppt":
        return PPTReducer(r, num_prefix_tokens, trace_source, threshold)
    raise ValueError("unknown token reduction method %r" % method)
