"""The reduction step of a block, one Cell per method.

A block hands its reducer what attention produced: `reduce(x [B, N, C],
size [B, N, 1] float32, source [B, N, N0], k, v [B, H, N, d], probs [B, H,
N, N])` -> (x, size, source with N - r tokens, decisions [B, 2]).  The
reducer computes what its method needs from them, ToMe's metric (the keys
summed over heads) and PPT's significance scores, and passes them to `step`,
the method's decision and gather/merge, which tests drive directly.
decisions is (1 if pooled, score variance) per image for PPT, zeros
otherwise.  `source` is only touched when tracing is on; otherwise it is a
placeholder passed through unchanged.

Blocks call `reduce`, not the Cell itself: under AMP O2/O3 MindSpore casts
the float inputs of every Cell call to float16, and the sizes, scores and
variances must stay float32 (PPT's threshold 7e-5 is next to float16's
smallest normal number).

Each method comes down to the same two moves: gather the tokens that stay
(`keep`, in output order) and add each merged token into its partner's slot
(`merge_tokens`).  Pruning only gathers; PPT picks, per image, the pruning
or the pooling `keep` indices, and switches the merges off for pruned images,
so the big tensors are gathered once whatever the branch.

With `fused_cpu_kernel`, PPT and ToMe steps run as one C++ kernel in CPU
inference: `FusedReducer`, behind the same `reduce` (fused_step.py).
"""
import mindspore as ms
from mindspore import nn, ops

from .fused_step import fused_step, settings_tensor
from .gather import add_into, take_tokens
from .matching import bipartite_matching, bipartite_positions, merge_layout
from .pruning import keep_by_score
from .significance import score_variance, significance_scores
from .sums import repeat_columns, sum_heads

DISTILL_SCORE = 1.5  # ranks the distillation token second, right after CLS (2)


def merge_tokens(x, size, source, keep, src_pos, dst_slot, active, trace_source: bool,
                 portable: bool = False):
    """The tokens `keep` [B, N - r]; token src_pos[:, i] is merged into output
    slot dst_slot[:, i] as a size-weighted mean, sizes add up and source rows
    are united.  `active` [B] (0/1 float) switches an image's merges off; None
    means all on.  `portable`: the formulation for ONNX export (gather.py).

    A slot s that receives tokens i becomes x_s + sum_i size_i / size'_s * (x_i - x_s)
    with size'_s = size_s + sum_i size_i: the weighted mean (size_s x_s +
    sum_i size_i x_i) / size'_s, written so that only the r merged rows are
    computed instead of weighting and dividing all N - r tokens.
    """
    src_size = take_tokens(size, src_pos, portable)
    if active is not None:
        src_size = src_size * active.reshape(-1, 1, 1)
    size = add_into(take_tokens(size, keep, portable), dst_slot, src_size, portable)
    share = src_size / take_tokens(size, dst_slot, portable)
    dst_pos = take_tokens(keep, dst_slot, portable)
    delta = (take_tokens(x, src_pos, portable).astype(ms.float32)
             - take_tokens(x, dst_pos, portable).astype(ms.float32))
    delta = delta * repeat_columns(share, delta.shape[2])  # not a broadcast (sums.py)
    merged = add_into(take_tokens(x, keep, portable), dst_slot, delta, portable)
    if trace_source:
        src_rows = take_tokens(source, src_pos, portable)
        if active is not None:
            src_rows = src_rows * active.reshape(-1, 1, 1)
        source = ops.minimum(add_into(take_tokens(source, keep, portable), dst_slot, src_rows, portable), 1.0)
    return merged, size, source


class _Reducer(nn.Cell):
    def __init__(self, r: int, num_tokens: int, num_prefix_tokens: int, trace_source: bool):
        super().__init__()
        self.r = r
        self.num_out = num_tokens - r
        self.distill_token = num_prefix_tokens == 2
        self.trace_source = trace_source
        self.a_positions, self.b_positions = bipartite_positions(num_tokens)
        self.portable = False  # the ONNX-exportable formulation; set by models/portable.py

    def pooling_plan(self, metric):
        unmerged, src, dst = bipartite_matching(metric, self.r, self.a_positions, self.b_positions,
                                                self.distill_token)
        return merge_layout(unmerged, src, dst, self.b_positions, self.distill_token)

    def pruning_plan(self, scores):
        if self.distill_token:
            scores = ops.concat((scores[:, :1], ops.full_like(scores[:, :1], DISTILL_SCORE), scores[:, 2:]), axis=1)
        return keep_by_score(scores, self.num_out)

    def decisions(self, k, v, probs):
        """What this block decided per image, [B, 2]: zeros unless PPT overrides it."""
        return ops.zeros((k.shape[0], 2), ms.float32)

    def construct(self, x, size, source, k, v, probs):
        return self.reduce(x, size, source, k, v, probs)


def tome_metric(k):
    """ToMe's matching metric: the keys summed over heads, [B, N, d] (the mean's scale cancels in
    the cosine similarity)."""
    return sum_heads(k)


class ToMeReducer(_Reducer):
    """Bipartite soft matching on the attention keys, size-weighted merge."""

    def reduce(self, x, size, source, k, v, probs):
        return self.step(x, size, source, tome_metric(k))

    def step(self, x, size, source, metric):
        keep, src_pos, dst_slot = self.pooling_plan(metric)
        x, size, source = merge_tokens(x, size, source, keep, src_pos, dst_slot, None, self.trace_source,
                                       self.portable)
        return x, size, source, ops.zeros((x.shape[0], 2), ms.float32)


class PruneReducer(_Reducer):
    """Drop the r least significant tokens; the rest follow in score order."""

    def reduce(self, x, size, source, k, v, probs):
        return self.step(x, size, source, significance_scores(probs, v))

    def step(self, x, size, source, scores):
        keep = self.pruning_plan(scores)
        if self.trace_source:
            source = take_tokens(source, keep, self.portable)
        x, size = take_tokens(x, keep, self.portable), take_tokens(size, keep, self.portable)
        return x, size, source, ops.zeros((x.shape[0], 2), ms.float32)


def decision_rows(pooled, variance):
    """PPT's choice per image: pooled [B] bool, variance [B] -> [B, 2] float32 (1 if pooled else 0,
    variance). float32 always: under AMP O2 in graph mode the variance can arrive as float16."""
    return ops.stack((pooled.astype(ms.float32), variance.astype(ms.float32)), axis=1)


class PPTReducer(_Reducer):
    """Per image: pool (ToMe) when its significance scores are flat
    (variance < threshold), prune otherwise.  Both branches give N - r tokens,
    so each image picks its branch's indices with a select and the batch keeps
    one shape."""

    def __init__(self, r: int, num_tokens: int, num_prefix_tokens: int, trace_source: bool, threshold: float):
        super().__init__(r, num_tokens, num_prefix_tokens, trace_source)
        self.threshold = threshold

    def decisions(self, k, v, probs):
        variance = score_variance(significance_scores(probs, v))
        return decision_rows(variance < self.threshold, variance)

    def reduce(self, x, size, source, k, v, probs):
        return self.step(x, size, source, tome_metric(k), significance_scores(probs, v))

    def step(self, x, size, source, metric, scores):
        variance = score_variance(scores)
        pooled = variance < self.threshold
        keep_pool, src_pos, dst_slot = self.pooling_plan(metric)
        keep = ops.select(pooled.reshape(-1, 1), keep_pool, self.pruning_plan(scores))
        x, size, source = merge_tokens(x, size, source, keep, src_pos, dst_slot, pooled.astype(ms.float32),
                                       self.trace_source, self.portable)
        return x, size, source, decision_rows(pooled, variance)


class FusedReducer(nn.Cell):
    """A PPT or ToMe reducer whose step runs as one C++ kernel in inference
    (fused_step.py): the same `reduce`, the same results.  Training uses the
    wrapped MindSpore-ops reducer (the kernel has no backward); the decisions
    come from the ops (when a trace asks for them)."""

    def __init__(self, reducer: _Reducer, method: str, threshold: float = 0.0):
        super().__init__()
        self.ops_reducer = reducer
        self.method = method
        self.kernel = fused_step(method, reducer.num_out)
        self.settings = settings_tensor(threshold, reducer.distill_token)

    def reduce(self, x, size, source, k, v, probs):
        if self.training:
            return self.ops_reducer.reduce(x, size, source, k, v, probs)
        if self.method == "ppt":
            merged, size = self.kernel(x.astype(ms.float32), size, k.astype(ms.float32), v.astype(ms.float32),
                                       probs.astype(ms.float32), self.settings)
        else:
            merged, size = self.kernel(x.astype(ms.float32), size, k.astype(ms.float32), self.settings)
        return merged.astype(x.dtype), size, source, self.ops_reducer.decisions(k, v, probs)

    def construct(self, x, size, source, k, v, probs):
        return self.reduce(x, size, source, k, v, probs)


def build_reducer(method: str, r: int, num_tokens: int, num_prefix_tokens: int = 1, trace_source: bool = False,
                  threshold: float = 7e-5, fused_cpu_kernel: bool = False):
    """The reducer Cell for one block of a token plan (a block receiving
    `num_tokens` tokens), or None when it keeps all tokens.  `fused_cpu_kernel`
    wraps PPT and ToMe reducers in a FusedReducer (pruning has no fused kernel)."""
    if method == "none" or r <= 0:
        return None
    if method == "tome":
        reducer = ToMeReducer(r, num_tokens, num_prefix_tokens, trace_source)
    elif method == "prune":
        return PruneReducer(r, num_tokens, num_prefix_tokens, trace_source)
    elif method == "ppt":
        reducer = PPTReducer(r, num_tokens, num_prefix_tokens, trace_source, threshold)
    else:
        raise ValueError("unknown token reduction method %r" % method)
    return FusedReducer(reducer, method, threshold) if fused_cpu_kernel else reducer
