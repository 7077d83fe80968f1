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
(`keep`, in output order) and add each merged token into its partner's slot
(`merge_tokens`).  Pruning only gathers; PPT picks, per image, the pruning
or the pooling `keep` indices, and switches the merges off for pruned images,
so the big tensors are gathered once whatever the branch.

With `fused_cpu_kernel`, PPT and ToMe reducers also offer `reduce_fused`
(x, size, k, v, probs) -> (x, size): the same step as one C++ kernel, for CPU
inference (fused_step.py).
"""
import mindspore as ms
from mindspore import nn, ops

from .fused_step import fused_step, settings_tensor
from .gather import add_into, take_tokens
from .matching import bipartite_matching, bipartite_positions, merge_layout
from .pruning import keep_by_score
from .significance import score_variance

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
             - take_tokens(x, dst_pos, portable).astype(ms.float32)) * share
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
        self.fused = None
        self.portable = False  # the ONNX-exportable formulation; set by models/portable.py

    def use_fused_kernel(self, method: str, threshold: float = 0.0):
        self.fused = fused_step(method, self.num_out)
        self.fused_settings = settings_tensor(threshold, self.distill_token)

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

    def __init__(self, r: int, num_tokens: int, num_prefix_tokens: int, trace_source: bool,
                 fused_cpu_kernel: bool = False):
        super().__init__(r, num_tokens, num_prefix_tokens, trace_source)
        if fused_cpu_kernel:
            self.use_fused_kernel("tome")

    def reduce(self, x, size, source, metric, scores):
        keep, src_pos, dst_slot = self.pooling_plan(metric)
        return merge_tokens(x, size, source, keep, src_pos, dst_slot, None, self.trace_source, self.portable)

    def reduce_fused(self, x, size, k, v, probs):
        merged, size = self.fused(x.astype(ms.float32), size, k.astype(ms.float32), self.fused_settings)
        return merged.astype(x.dtype), size


class PruneReducer(_Reducer):
    """Drop the r least significant tokens; the rest follow in score order."""

    def reduce(self, x, size, source, metric, scores):
        keep = self.pruning_plan(scores)
        if self.trace_source:
            source = take_tokens(source, keep, self.portable)
        return take_tokens(x, keep, self.portable), take_tokens(size, keep, self.portable), source


class PPTReducer(_Reducer):
    """Per image: pool (ToMe) when its significance scores are flat
    (variance < threshold), prune otherwise.  Both branches give N - r tokens,
    so each image picks its branch's indices with a select and the batch keeps
    one shape."""

    def __init__(self, r: int, num_tokens: int, num_prefix_tokens: int, trace_source: bool, threshold: float,
                 fused_cpu_kernel: bool = False):
        super().__init__(r, num_tokens, num_prefix_tokens, trace_source)
        self.threshold = threshold
        if fused_cpu_kernel:
            self.use_fused_kernel("ppt", threshold)

    def decisions(self, scores):
        variance = score_variance(scores)
        return ops.stack(((variance < self.threshold).astype(ms.float32), variance), axis=1)

    def reduce(self, x, size, source, metric, scores):
        pooled = score_variance(scores) < self.threshold
        keep_pool, src_pos, dst_slot = self.pooling_plan(metric)
        keep = ops.select(pooled.reshape(-1, 1), keep_pool, self.pruning_plan(scores))
        return merge_tokens(x, size, source, keep, src_pos, dst_slot, pooled.astype(ms.float32), self.trace_source,
                            self.portable)

    def reduce_fused(self, x, size, k, v, probs):
        merged, size = self.fused(x.astype(ms.float32), size, k.astype(ms.float32), v.astype(ms.float32),
                                  probs.astype(ms.float32), self.fused_settings)
        return merged.astype(x.dtype), size


def build_reducer(method: str, r: int, num_tokens: int, num_prefix_tokens: int = 1, trace_source: bool = False,
                  threshold: float = 7e-5, fused_cpu_kernel: bool = False):
    """The reducer Cell for one block of a token plan (a block receiving
    `num_tokens` tokens), or None when it keeps all tokens.  `fused_cpu_kernel`
    gives PPT and ToMe reducers `reduce_fused` as well (pruning has no fused kernel)."""
    if method == "none" or r <= 0:
        return None
    if method == "tome":
        return ToMeReducer(r, num_tokens, num_prefix_tokens, trace_source, fused_cpu_kernel)
    if method == "prune":
        return PruneReducer(r, num_tokens, num_prefix_tokens, trace_source)
    if method == "ppt":
        return PPTReducer(r, num_tokens, num_prefix_tokens, trace_source, threshold, fused_cpu_kernel)
    raise ValueError("unknown token reduction method %r" % method)
