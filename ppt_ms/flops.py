"""Multiply-accumulates (MACs) of a ViT/DeiT, counted from its static token plan.

Nothing is run: every count follows from the architecture and the plan
(`net.plan`, one BlockPlan per block with its input token count N and the r
tokens its reduction step removes, N' = N - r).  Notation: C embedding width,
H heads of width d = C / H, hidden the MLP width, K classes, p patch size.

Counted (one MAC = one multiply with its accumulate):
- patch embedding, a conv written as a matmul: num_patches * 3 * p * p * C
- per block, attention on its N input tokens: qkv N*C*3C, q k^T H*N*N*d,
  attn.v H*N*N*d, proj N*C*C; the MLP on the N' reduced tokens: 2*N'*C*hidden
- the reduction step as ppt_ms/token_reduction computes it (the `*_step_macs`
  functions below): matrix products, vector norms, sums and means (one MAC
  per element reduced), elementwise multiplies and divides (one per output
  element; additions, like those of the scatter-add that merges tokens, are
  not counted).  PPT computes both branches for every image and selects, so
  both are counted.  Top-k, gathers, sorts, argmax, comparisons and selects
  do no arithmetic: 0.
- the head: C*K on the CLS token (distilled: two heads, 2*C*K); mean pooling
  adds N'*C (the patch tokens left), attention pooling (SigLIP) its latent
  query C*C, keys and values N'*2C*C, scores and weighted sum 2*N'*C, output
  projection C*C and MLP 2*C*hidden.
- with registers, ToMe's similarity is over the patch tokens only.
Not counted: LayerNorm (the final norm and CLIP's pre-norm included, reported
as 0), softmax, GELU, LayerScale and the attention scale (elementwise
scales), proportional attention's log(size) bias, bias and residual
additions, scalar arithmetic.  This is the convention behind
"4.6 G for DeiT-S" (DeiT paper, fvcore).  Counts are per image, for graph
mode, which drops unused values (PyNative also computes the head-mean of the
keys in pruning blocks, N*C more, and discards it).

Measured (per image, 224 px, 1000 classes):
- deit_small_patch16_224, no reduction: 4,598,882,304 (published: 4.6 G).
- PPT r 50 at blocks [3, 6, 9]: 2,942,553,487; tokens 197 -> 147 -> 97 -> 49
  (the last step can only remove (97 - 1) // 2 = 48); the three reduction
  steps are 1,574,287 of it.  The PPT README prints 2.944411999 G, from
  torchprofile on the PyTorch code: 0.06 % more.  torchprofile counts a
  different set of small terms: it adds LayerNorm elements (1.2 M), the
  attention scale (1.5 M) and the key means and score products the
  reference computes in every block (0.1 M); it leaves out norms, divisions
  and the merge.  Applying torchprofile's rules by hand to the reference
  code gives 2.9438 to 2.9451 G depending on which branch each PPT block
  takes for the profiled input, which brackets the README value.
- ToMe r 13 in every block: 2,706,942,812 (tokens 197 -> 41; 4,241,756 in the
  twelve reduction steps); the ToMe paper (arXiv 2210.09461) gives 2.7 G.
  r 8: 3,422,074,976 (paper 3.4); r 16: 2,294,459,834 (paper 2.3).
"""
from dataclasses import dataclass
from typing import Optional, Tuple

from mindspore.nn.utils import no_init_parameters

from .models import create_model
from .reporting import table
from .token_reduction.prefix import PrefixTokens
from .token_reduction.schedule import BlockPlan


@dataclass(frozen=True)
class ViTSpec:
    """The shape facts the MAC count depends on.

    `plan` has one BlockPlan per block; block 0 receives num_patches +
    prefix tokens (class token, distillation token, registers: `prefix`),
    every later block what the previous one kept.  `global_pool` is the head's
    pooling (token, avg, map).  `trace_source` adds the cost of merging the
    [N, N0] source maps.
    """
    num_patches: int
    patch_size: int
    in_chans: int
    embed_dim: int
    num_heads: int
    mlp_hidden: int
    num_classes: int
    plan: Tuple[BlockPlan, ...]
    prefix: PrefixTokens = PrefixTokens()
    global_pool: str = "token"
    trace_source: bool = False

    def __post_init__(self):
        if self.embed_dim % self.num_heads:
            raise ValueError("embed_dim %d is not divisible by num_heads %d" % (self.embed_dim, self.num_heads))
        if not self.plan:
            raise ValueError("the token plan is empty: a ViT needs at least one block")
        expected = self.num_tokens
        for block in self.plan:
            if block.tokens_in != expected:
                raise ValueError("token plan block %d receives %d tokens, but %d arrive there"
                                 % (block.index, block.tokens_in, expected))
            expected = block.tokens_out

    @property
    def num_prefix_tokens(self) -> int:
        return self.prefix.count

    @property
    def num_tokens(self) -> int:
        return self.num_patches + self.num_prefix_tokens

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads


def spec_of(net) -> ViTSpec:
    """Read a ViTSpec off a built ppt_ms VisionTransformer."""
    needed = ("patch_embed", "blocks", "plan", "embed_dim", "num_classes", "prefix", "global_pool")
    missing = [name for name in needed if not hasattr(net, name)]
    if missing:
        raise TypeError("count_macs needs a ppt_ms VisionTransformer or a ViTSpec; %s lacks %s"
                        % (type(net).__name__, ", ".join(missing)))
    patches = net.patch_embed
    first = net.blocks[0]
    return ViTSpec(num_patches=patches.num_patches, patch_size=patches.patch_size,
                   in_chans=patches.in_chans, embed_dim=net.embed_dim, num_heads=first.attn.num_heads,
                   mlp_hidden=first.mlp.fc1.out_channels, num_classes=net.num_classes, plan=tuple(net.plan),
                   prefix=net.prefix, global_pool=net.global_pool, trace_source=bool(net.trace_source))


# ---- the reduction step, one function per computation in ppt_ms/token_reduction ----

def tome_step_macs(n: int, r: int, channels: int, num_heads: int, matched_from: int = 0) -> int:
    """Bipartite soft matching of n tokens and the size-weighted merge of r of them.

    metric = sum of the keys over heads (n*C); L2-normalise it (sum of
    squares n*d, scale n*d); scores A B^T (Na*Nb*d, A = even, B = odd
    tokens); merge (`reducers.merge_tokens`): each merged token's share
    size_i / size'_s (r divides) times its difference from its partner
    (r*C multiplies), scatter-added into the kept tokens (additions, not
    counted).  Source tracing unites source rows by the same additions: 0.
    """
    head_dim = channels // num_heads
    matched = n - matched_from  # with registers, the patch tokens only
    set_a, set_b = (matched + 1) // 2, matched // 2
    head_sum = n * channels
    normalise = 2 * n * head_dim
    scores = set_a * set_b * head_dim
    merge = r * channels + r
    return head_sum + normalise + scores + merge


def significance_macs(n: int, channels: int, num_heads: int, scored_from: int = 1) -> int:
    """PPT's score s_j = (sum over heads of attn[h, 0, j]) * ||v_j||, normalised.

    Head sum of the CLS attention row (H*n), value norms over all C channels
    (n*C), their product (n), sum and divide of the scored tokens (all but CLS
    and registers).
    """
    return num_heads * n + n * channels + n + 2 * (n - scored_from)


def variance_macs(n: int, scored_from: int = 1) -> int:
    """Unbiased variance of the scored tokens: a mean and a sum of squares."""
    return 2 * (n - scored_from)


def prune_step_macs(n: int, channels: int, num_heads: int, scored_from: int = 1) -> int:
    """Keep the n - r most significant tokens: the scores; top-k and gathers are free."""
    return significance_macs(n, channels, num_heads, scored_from)


def ppt_step_macs(n: int, r: int, channels: int, num_heads: int, traced_tokens: int = 0,
                  prefix: PrefixTokens = PrefixTokens()) -> int:
    """PPT computes both branches for every image and selects one: scores,
    their variance, the ToMe pooling branch and the (free) pruning gathers.
    The merges of pruned images are switched off by multiplying the merged
    sizes (r) and, with tracing, the merged source rows (r*N0) by 0/1."""
    switch = r + r * traced_tokens
    return (significance_macs(n, channels, num_heads, prefix.scored_from) + variance_macs(n, prefix.scored_from)
            + tome_step_macs(n, r, channels, num_heads, prefix.matched_from) + switch)


def reduction_macs(block: BlockPlan, spec: ViTSpec) -> int:
    """MACs of one block's reduction step (0 when it keeps all tokens)."""
    if block.r <= 0 or block.method == "none":
        return 0
    n, c, h, prefix = block.tokens_in, spec.embed_dim, spec.num_heads, spec.prefix
    traced = spec.num_tokens if spec.trace_source else 0
    if block.method == "tome":
        return tome_step_macs(n, block.r, c, h, prefix.matched_from)
    if block.method == "ppt":
        return ppt_step_macs(n, block.r, c, h, traced, prefix)
    if block.method == "prune":
        return prune_step_macs(n, c, h, prefix.scored_from)
    raise ValueError("cannot count MACs of token reduction method %r in block %d" % (block.method, block.index))


# ---- the report ----

@dataclass(frozen=True)
class BlockMacs:
    """MACs of one block, per image.  Attention terms use tokens_in, the MLP tokens_out."""
    index: int
    tokens_in: int
    tokens_out: int
    method: str
    qkv: int
    attn_scores: int
    attn_values: int
    proj: int
    reduction: int
    mlp: int

    @property
    def total(self) -> int:
        return self.qkv + self.attn_scores + self.attn_values + self.proj + self.reduction + self.mlp


@dataclass(frozen=True)
class MacsReport:
    """Per-image MACs of a whole network; `final_norm` is 0 (LayerNorm is not counted)."""
    patch_embed: int
    blocks: Tuple[BlockMacs, ...]
    final_norm: int
    head: int

    @property
    def total(self) -> int:
        return self.patch_embed + sum(b.total for b in self.blocks) + self.final_norm + self.head

    @property
    def tokens_per_block(self):
        """Tokens leaving each block."""
        return [b.tokens_out for b in self.blocks]


def block_macs(block: BlockPlan, spec: ViTSpec) -> BlockMacs:
    n, kept, c = block.tokens_in, block.tokens_out, spec.embed_dim
    heads, d = spec.num_heads, spec.head_dim
    return BlockMacs(index=block.index, tokens_in=n, tokens_out=kept, method=block.method,
                     qkv=n * c * 3 * c,
                     attn_scores=heads * n * n * d,
                     attn_values=heads * n * n * d,
                     proj=n * c * c,
                     reduction=reduction_macs(block, spec),
                     mlp=2 * kept * c * spec.mlp_hidden)


def count_macs(net_or_spec) -> MacsReport:
    """Per-image MACs of a ppt_ms VisionTransformer (or a ViTSpec) from its token plan."""
    spec = net_or_spec if isinstance(net_or_spec, ViTSpec) else spec_of(net_or_spec)
    patch_embed = spec.num_patches * spec.in_chans * spec.patch_size ** 2 * spec.embed_dim
    return MacsReport(patch_embed=patch_embed,
                      blocks=tuple(block_macs(block, spec) for block in spec.plan),
                      final_norm=0,
                      head=head_macs(spec))


def head_macs(spec: ViTSpec) -> int:
    """Pooling and classifier (see the module docstring)."""
    c, classes = spec.embed_dim, spec.num_classes
    if spec.prefix.distilled:
        return 2 * c * classes
    tokens = spec.plan[-1].tokens_out - spec.num_prefix_tokens
    if spec.global_pool == "avg":
        return tokens * c + c * classes
    if spec.global_pool == "map":
        return c * c + tokens * 2 * c * c + 2 * tokens * c + c * c + 2 * c * spec.mlp_hidden + c * classes
    return c * classes


def count_macs_for(model_name: str, token_reduction=None, img_size: Optional[int] = None,
                   num_classes: Optional[int] = None) -> MacsReport:
    """MACs of a registered model; img_size and num_classes default to the
    model's own (224 px and 1000 classes for every DeiT/ViT *_224 model).

    The network is built without initialising its weights, so this is cheap
    even for ViT-L.
    """
    overrides = {"token_reduction": token_reduction}
    if img_size is not None:
        overrides["img_size"] = img_size
    if num_classes is not None:
        overrides["num_classes"] = num_classes
    with no_init_parameters():
        net = create_model(model_name, **overrides)
    return count_macs(net)


def _millions(value: int) -> str:
    return "%.2f" % (value / 1e6)


def format_macs_table(report: MacsReport) -> str:
    """A fixed-width table: one row per block (in M MACs), then the totals."""
    columns = ("block", "tokens", "method", "qkv", "q.k", "attn.v", "proj", "reduce", "mlp", "total")
    rows = [columns]
    for b in report.blocks:
        rows.append((str(b.index), "%d->%d" % (b.tokens_in, b.tokens_out), b.method,
                     _millions(b.qkv), _millions(b.attn_scores), _millions(b.attn_values), _millions(b.proj),
                     _millions(b.reduction), _millions(b.mlp), _millions(b.total)))
    lines = ["MACs per image (M = 1e6; LayerNorm, softmax and GELU are not counted)"] + table(rows)
    lines += ["patch embed  %s M" % _millions(report.patch_embed),
              "final norm   %s M (not counted)" % _millions(report.final_norm),
              "head         %s M" % _millions(report.head),
              "total        %.4f G  (%d MACs)" % (report.total / 1e9, report.total)]
    return "\n".join(lines)
