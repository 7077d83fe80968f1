"""ViT / DeiT with optional token reduction (PPT, ToMe, pruning).

Parameter names equal timm's state_dict keys, so timm checkpoints load by name.
The token plan is fixed at construction; every block knows how many tokens it
receives and removes, so all shapes are static and graph mode compiles once.
"""
from typing import Mapping, Optional

import numpy as np
import mindspore as ms
from mindspore import nn, ops, Parameter
from mindspore.common.initializer import initializer, TruncatedNormal

from ..token_reduction.reducers import build_reducer
from ..token_reduction import settings
from ..token_reduction.schedule import BlockPlan, plan_from_config
from .attention import Attention
from .layers import DropPath, LayerNorm, Mlp, PatchEmbed, dense
from .registry import register_model


class Block(nn.Cell):
    """Pre-norm transformer block; between attention and MLP it may reduce the
    tokens.  (x [B, N, C], size [B, N, 1] int32, source) -> (x [B, N - r, C], size,
    source); `traced` adds the block's decisions [B, 2]: (1 if pooled, score
    variance) for PPT, zeros otherwise.  Sizes are int32 token counts so that AMP,
    which casts the float arguments of Cell calls, leaves them exact."""

    def __init__(self, dim, num_heads, mlp_ratio, qkv_bias, drop_path, plan: BlockPlan,
                 proportional: bool, num_prefix_tokens: int, threshold: float, trace_source: bool):
        super().__init__()
        self.norm1 = LayerNorm(dim)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.drop_path = DropPath(drop_path)
        self.norm2 = LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.plan = plan
        self.proportional = proportional
        self.reducer = build_reducer(plan.method, plan.r, plan.tokens_in, num_prefix_tokens, trace_source, threshold)
        self.reduces = self.reducer is not None

    def traced(self, x, size, source):
        q, k, v = self.attn.heads(self.norm1(x))
        probs = self.attn.probabilities(q, k, size if self.proportional else None)
        x = x + self.drop_path(self.attn.combine(probs, v))
        if self.reduces:
            x, size, source, decisions = self.reducer(x, size, source, k, v, probs)
        else:
            decisions = ops.zeros((x.shape[0], 2), ms.float32)
        return x + self.drop_path(self.mlp(self.norm2(x))), size, source, decisions

    def construct(self, x, size, source):
        # a slice: unpacking into `_` makes MindSpore 2.10 warn that side-effect nodes were eliminated
        return self.traced(x, size, source)[:3]


class VisionTransformer(nn.Cell):
    """ViT/DeiT classifier: [B, 3, H, W] -> logits [B, num_classes]
    (with `trace_source`: (logits, source [B, N_final, N_input])).
    Written once for every device; ppt_ms.formulations derives the CPU and ONNX forms."""

    def __init__(self, img_size=224, patch_size=16, in_chans=3, num_classes=1000, embed_dim=768, depth=12,
                 num_heads=12, mlp_ratio=4.0, qkv_bias=True, drop_path_rate=0.0, distilled=False,
                 token_reduction: Optional[Mapping] = None):
        super().__init__()
        if num_classes <= 0:
            raise ValueError("num_classes must be > 0, got %r" % num_classes)
        self.num_classes = num_classes
        self.embed_dim = embed_dim
        self.distilled = distilled
        self.num_prefix_tokens = 2 if distilled else 1
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.num_tokens = self.patch_embed.num_patches + self.num_prefix_tokens
        self.cls_token = Parameter(initializer(TruncatedNormal(0.02), (1, 1, embed_dim)), name="cls_token")
        if distilled:
            self.dist_token = Parameter(initializer(TruncatedNormal(0.02), (1, 1, embed_dim)), name="dist_token")
        self.pos_embed = Parameter(initializer(TruncatedNormal(0.02), (1, self.num_tokens, embed_dim)),
                                   name="pos_embed")

        self.token_reduction = settings.complete(token_reduction)
        tr = self.token_reduction
        self.plan = plan_from_config(tr, depth, self.num_tokens, self.num_prefix_tokens)
        self.reduces = any(p.r > 0 for p in self.plan)
        self.trace_source = bool(tr["trace_source"]) and self.reduces
        first_reducing = min([p.index for p in self.plan if p.r > 0], default=depth)
        rates = np.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.CellList([
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, rates[i], self.plan[i],
                  proportional=bool(tr["prop_attn"]) and i > first_reducing,
                  num_prefix_tokens=self.num_prefix_tokens, threshold=float(tr["threshold"]),
                  trace_source=self.trace_source)
            for i in range(depth)])
        self.norm = LayerNorm(embed_dim)
        self.head = dense(embed_dim, num_classes)
        if distilled:
            self.head_dist = dense(embed_dim, num_classes)

    @property
    def tokens_per_block(self):
        """Token count leaving each block, from the static plan."""
        return [p.tokens_out for p in self.plan]

    def embed(self, images):
        x = self.patch_embed(images)
        b = x.shape[0]
        prefix = ops.broadcast_to(self.cls_token.astype(x.dtype), (b, 1, self.embed_dim))
        if self.distilled:
            dist = ops.broadcast_to(self.dist_token.astype(x.dtype), (b, 1, self.embed_dim))
            prefix = ops.concat((prefix, dist), axis=1)
        return ops.concat((prefix, x), axis=1) + self.pos_embed.astype(x.dtype)

    def initial_state(self, images):
        """-> (tokens [B, N, C], size [B, N, 1] int32 all ones, source: the identity
        [B, N, N] when tracing, else a placeholder)."""
        x = self.embed(images)
        b, n, _ = x.shape
        size = ops.ones((b, n, 1), ms.int32)
        if self.trace_source:
            source = ops.broadcast_to(ops.eye(n, n, ms.float32).reshape(1, n, n), (b, n, n))
        else:
            source = ops.zeros((1,), ms.float32)
        return x, size, source

    def forward_head(self, x):
        """Normed tokens [B, N_final, C] -> logits [B, num_classes]."""
        if self.distilled:
            return (self.head(x[:, 0]) + self.head_dist(x[:, 1])) / 2
        return self.head(x[:, 0])

    def construct(self, images):
        x, size, source = self.initial_state(images)
        for block in self.blocks:
            x, size, source = block(x, size, source)
        logits = self.forward_head(self.norm(x))
        if self.trace_source:
            return logits, source
        return logits

    def trace(self, images):
        """The forward pass with everything it decides: (logits, size [B, N_final, 1] int32,
        sources (the source map after each block), stats [depth, B, 2] (each block's decisions))."""
        x, size, source = self.initial_state(images)
        sources, stats = (), ()
        for block in self.blocks:
            x, size, source, decisions = block.traced(x, size, source)
            sources = sources + (source,)
            stats = stats + (decisions,)
        return self.forward_head(self.norm(x)), size, sources, ops.stack(stats)


def logits_of(output):
    """The logits of a model output (a model with trace_source returns (logits, source))."""
    if isinstance(output, tuple):
        return output[0]
    return output


class TokenTrace(nn.Cell):
    """Everything a reduced forward pass decides, for tests and visualisation:
    images -> (logits, size [B, N_final, 1], source, stats [depth, B, 2]) where
    stats[..., 0] is 1 where an image was pooled and stats[..., 1] its score variance."""

    def __init__(self, net: VisionTransformer):
        super().__init__()
        self.net = net

    def construct(self, images):
        logits, size, sources, stats = self.net.trace(images)
        return logits, size, sources[-1], stats


def _vit(architecture: dict, overrides: dict):
    """A VisionTransformer of `architecture`; overrides given as None keep its default."""
    return VisionTransformer(**{**architecture, **{k: v for k, v in overrides.items() if v is not None}})


_FAMILY = {"tiny": (192, 3), "small": (384, 6), "base": (768, 12), "large": (1024, 16)}


def _define(name, size, img_size, distilled=False):
    dim, heads = _FAMILY[size]
    architecture = dict(img_size=img_size, patch_size=16, embed_dim=dim, depth=24 if size == "large" else 12,
                        num_heads=heads, distilled=distilled)

    def constructor(**overrides):
        return _vit(architecture, overrides)
    constructor.__name__ = name
    constructor.__doc__ = "%s: ViT-%s/16, %d px%s (timm name)." % (name, size, img_size,
                                                                    ", distillation token" if distilled else "")
    register_model(constructor)


for _size in ("tiny", "small", "base"):
    _define("deit_%s_patch16_224" % _size, _size, 224)
    _define("deit_%s_distilled_patch16_224" % _size, _size, 224, distilled=True)
_define("deit_base_patch16_384", "base", 384)
_define("deit_base_distilled_patch16_384", "base", 384, distilled=True)
for _size in ("tiny", "small", "base", "large"):
    _define("vit_%s_patch16_224" % _size, _size, 224)
    _define("vit_%s_patch16_384" % _size, _size, 384)


@register_model
def vit_quickstart(**overrides):
    """A tiny ViT for the built-in digits example: 24 px, 4 px patches (36 + CLS tokens), width 64, 4 blocks."""
    return _vit(dict(img_size=24, patch_size=4, embed_dim=64, depth=4, num_heads=2, num_classes=10), overrides)
