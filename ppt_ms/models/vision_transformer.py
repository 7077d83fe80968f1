"""ViT with optional token reduction (PPT, ToMe, pruning): DeiT, the original ViT, CLIP,
SigLIP, DINOv2 and DeiT III are options of the one VisionTransformer, as in timm (prefix
tokens: class token, distillation token, registers; LayerScale; a LayerNorm before the
blocks; the pooling head).

Parameter names equal timm's state_dict keys, so timm checkpoints load by name.
The token plan is fixed at construction; every block knows how many tokens it
receives and removes, so all shapes are static and graph mode compiles once.
"""
from typing import Mapping, Optional

import numpy as np
import mindspore as ms
from mindspore import nn, ops, Parameter
from mindspore.common.initializer import initializer, TruncatedNormal

from ..checkpoint.layouts import MINDCV_ACTIVATION, MINDCV_NORM_EPS
from ..token_reduction.prefix import PrefixTokens
from ..token_reduction.reducers import build_reducer
from ..token_reduction import settings
from ..token_reduction.schedule import BlockPlan, plan_from_config
from .attention import Attention
from .layers import DropPath, LayerNorm, LayerScale, Mlp, PatchEmbed, dense
from .pooling import GLOBAL_POOLS, AttentionPoolLatent
from .registry import register_model


class Block(nn.Cell):
    """Pre-norm transformer block, with LayerScale when init_values is set; between attention
    and MLP it may reduce the tokens.  (x [B, N, C], size [B, N, 1] int32, source) -> (x [B, N - r, C],
    size, source); `traced` adds the block's decisions [B, 2]: (1 if pooled, score variance) for
    PPT, zeros otherwise.  Sizes are int32 token counts so that AMP, which casts the float
    arguments of Cell calls, leaves them exact."""

    def __init__(self, dim, num_heads, mlp_ratio, qkv_bias, drop_path, plan: BlockPlan, proportional: bool,
                 prefix: PrefixTokens, threshold: float, trace_source: bool, init_values=None, act_layer="gelu",
                 norm_eps=1e-6):
        super().__init__()
        self.norm1 = LayerNorm(dim, norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.ls1 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.drop_path = DropPath(drop_path)
        self.norm2 = LayerNorm(dim, norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer)
        self.ls2 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.plan = plan
        self.proportional = proportional
        self.reducer = build_reducer(plan.method, plan.r, plan.tokens_in, prefix, trace_source, threshold)
        self.reduces = self.reducer is not None

    def traced(self, x, size, source):
        q, k, v = self.attn.heads(self.norm1(x))
        probs = self.attn.probabilities(q, k, size if self.proportional else None)
        x = x + self.drop_path(self.ls1(self.attn.combine(probs, v)))
        if self.reduces:
            x, size, source, decisions = self.reducer(x, size, source, k, v, probs)
        else:
            decisions = ops.zeros((x.shape[0], 2), ms.float32)
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x)))), size, source, decisions

    def construct(self, x, size, source):
        # a slice: unpacking into `_` makes MindSpore 2.10 warn that side-effect nodes were eliminated
        return self.traced(x, size, source)[:3]


class VisionTransformer(nn.Cell):
    """ViT classifier: [B, 3, H, W] -> logits [B, num_classes] (with `trace_source`:
    (logits, source [B, N_final, N_input])); `features` gives the pooled, normed embedding
    (timm's pre-logits) instead, and with num_classes 0 (no classifier, as timm) so does the
    forward pass.  Written once for every device; ppt_ms.formulations derives
    the CPU and ONNX forms.

    The keyword names are timm's: class_token, reg_tokens, no_embed_class (the position
    embedding covers the patches only), pre_norm (a LayerNorm before the blocks, CLIP),
    init_values (LayerScale), global_pool ("token", "avg", "map"), fc_norm (None: a
    LayerNorm after pooling for "avg", instead of the one before it), act_layer ("gelu",
    "quick_gelu", "gelu_tanh"); norm_eps is timm's LayerNorm eps (1e-5 in the CLIP models, 1e-7 in mindcv's)."""

    def __init__(self, img_size=224, patch_size=16, in_chans=3, num_classes=1000, global_pool="token", embed_dim=768,
                 depth=12, num_heads=12, mlp_ratio=4.0, qkv_bias=True, init_values=None, class_token=True,
                 reg_tokens=0, no_embed_class=False, pre_norm=False, fc_norm=None, drop_path_rate=0.0,
                 act_layer="gelu", norm_eps=1e-6, distilled=False, token_reduction: Optional[Mapping] = None):
        super().__init__()
        if num_classes < 0:
            raise ValueError("num_classes must be >= 0 (0: no classifier, the model returns its embedding), got %r"
                             % num_classes)
        if global_pool not in GLOBAL_POOLS:
            raise ValueError("global_pool %r is not one of %s" % (global_pool, ", ".join(GLOBAL_POOLS)))
        if global_pool == "token" and not class_token:
            raise ValueError("global_pool 'token' needs a class token (class_token=True)")
        if distilled and global_pool != "token":
            raise ValueError("a distilled model pools its class and distillation tokens (global_pool 'token')")
        self.num_classes = num_classes
        self.embed_dim = embed_dim
        self.act_layer = act_layer
        self.norm_eps = norm_eps
        self.global_pool = global_pool
        self.distilled = distilled
        self.prefix = PrefixTokens(class_token, distilled, reg_tokens)
        self.num_prefix_tokens = self.prefix.count
        self.no_embed_class = no_embed_class
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim, bias=not pre_norm)
        self.num_tokens = self.patch_embed.num_patches + self.num_prefix_tokens
        self.cls_token = self._token_parameter("cls_token", 1) if class_token else None
        self.dist_token = self._token_parameter("dist_token", 1) if distilled else None
        self.reg_token = self._token_parameter("reg_token", reg_tokens) if reg_tokens else None
        self.pos_embed_prefix_tokens = 0 if no_embed_class else self.num_prefix_tokens
        self.pos_embed = self._token_parameter("pos_embed", self.patch_embed.num_patches + self.pos_embed_prefix_tokens)
        self.norm_pre = LayerNorm(embed_dim, norm_eps) if pre_norm else nn.Identity()

        self.token_reduction = settings.complete(token_reduction)
        tr = self.token_reduction
        self.plan = plan_from_config(tr, depth, self.num_tokens, self.num_prefix_tokens)
        self.reduces = any(p.r > 0 for p in self.plan)
        self.trace_source = bool(tr["trace_source"]) and self.reduces
        first_reducing = min([p.index for p in self.plan if p.r > 0], default=depth)
        rates = np.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.CellList([
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, rates[i], self.plan[i],
                  proportional=bool(tr["prop_attn"]) and i > first_reducing, prefix=self.prefix,
                  threshold=float(tr["threshold"]), trace_source=self.trace_source, init_values=init_values,
                  act_layer=act_layer, norm_eps=norm_eps)
            for i in range(depth)])
        use_fc_norm = global_pool == "avg" if fc_norm is None else fc_norm
        self.norm = nn.Identity() if use_fc_norm else LayerNorm(embed_dim, norm_eps)
        self.attn_pool = (AttentionPoolLatent(embed_dim, num_heads, mlp_ratio, act_layer, norm_eps)
                          if global_pool == "map" else None)
        self.fc_norm = LayerNorm(embed_dim, norm_eps) if use_fc_norm else nn.Identity()
        self.head = dense(embed_dim, num_classes) if num_classes else nn.Identity()
        if distilled:
            self.head_dist = dense(embed_dim, num_classes) if num_classes else nn.Identity()

    def _token_parameter(self, name, count):
        return Parameter(initializer(TruncatedNormal(0.02), (1, count, self.embed_dim)), name=name)

    @property
    def tokens_per_block(self):
        """Token count leaving each block, from the static plan."""
        return [p.tokens_out for p in self.plan]

    def embed(self, images):
        """[B, 3, H, W] -> tokens [B, N, C]: prefix tokens, then the patches, position embedded
        (before the prefix is put in front when the position embedding covers the patches only)."""
        x = self.patch_embed(images)
        b = x.shape[0]
        pos_embed = self.pos_embed.astype(x.dtype)
        if self.no_embed_class:
            x = x + pos_embed
        prefix = ()
        for token in (self.cls_token, self.dist_token, self.reg_token):
            if token is not None:
                prefix = prefix + (ops.broadcast_to(token.astype(x.dtype), (b,) + token.shape[1:]),)
        if prefix:
            x = ops.concat(prefix + (x,), axis=1)
        if not self.no_embed_class:
            x = x + pos_embed
        return self.norm_pre(x)

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

    def pool(self, x):
        """Final tokens [B, N_final, C] (after the final norm) -> [B, C] by global_pool
        (pooling.py); a distilled model averages its class and distillation tokens."""
        if self.distilled:
            return (x[:, 0] + x[:, 1]) / 2
        if self.global_pool == "token":
            return x[:, 0]
        patches = ops.narrow(x, 1, self.num_prefix_tokens, x.shape[1] - self.num_prefix_tokens)
        if self.global_pool == "avg":
            return patches.mean(axis=1)
        return self.attn_pool(patches)

    def forward_head(self, x):
        """Final tokens [B, N_final, C] (after the final norm) -> logits [B, num_classes]."""
        if self.distilled:
            return (self.head(x[:, 0]) + self.head_dist(x[:, 1])) / 2
        return self.head(self.fc_norm(self.pool(x)))

    def forward_tokens(self, images):
        """[B, 3, H, W] -> the final tokens after the final norm, [B, N_final, C], and the source map."""
        x, size, source = self.initial_state(images)
        for block in self.blocks:
            x, size, source = block(x, size, source)
        return self.norm(x), source

    def features(self, images):
        """[B, 3, H, W] -> the pooled, normed embedding [B, C] (timm's forward_head(pre_logits=True))."""
        return self.fc_norm(self.pool(self.forward_tokens(images)[0]))

    def construct(self, images):
        x, source = self.forward_tokens(images)
        logits = self.forward_head(x)
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


class Features(nn.Cell):
    """images [B, 3, H, W] -> the pooled, normed embedding [B, C] (timm's pre-logits) of `net`."""

    def __init__(self, net: VisionTransformer):
        super().__init__()
        self.net = net

    def construct(self, images):
        return self.net.features(images)


_WIDTHS = {"tiny": (192, 3), "small": (384, 6), "base": (768, 12), "large": (1024, 16)}
CLIP = dict(pre_norm=True, norm_eps=1e-5)
SIGLIP = dict(class_token=False, global_pool="map", num_classes=0)
MINDCV = dict(act_layer=MINDCV_ACTIVATION, norm_eps=MINDCV_NORM_EPS)


def _size(size: str, patch_size: int, img_size: int) -> dict:
    dim, heads = _WIDTHS[size]
    return dict(img_size=img_size, patch_size=patch_size, embed_dim=dim, depth=24 if size == "large" else 12,
                num_heads=heads)


def _architectures() -> dict:
    """timm name -> VisionTransformer arguments (timm's model_args, default input size and the class
    count of timm 1.0.31's default pretrained tag: 0 where that tag is a feature extractor)."""
    table = {}
    for size in ("tiny", "small", "base"):
        table["deit_%s_patch16_224" % size] = _size(size, 16, 224)
        table["deit_%s_distilled_patch16_224" % size] = dict(_size(size, 16, 224), distilled=True)
    table["deit_base_patch16_384"] = _size("base", 16, 384)
    table["deit_base_distilled_patch16_384"] = dict(_size("base", 16, 384), distilled=True)
    for size in ("tiny", "small", "base", "large"):
        table["vit_%s_patch16_224" % size] = _size(size, 16, 224)
        table["vit_%s_patch16_384" % size] = _size(size, 16, 384)
    for size in ("small", "base", "large"):
        table["vit_%s_patch32_224" % size] = dict(_size(size, 32, 224), num_classes=0 if size == "large" else 1000)
        table["vit_%s_patch32_384" % size] = _size(size, 32, 384)
    for patch in (16, 32):  # mindcv's names: its layouts load (checkpoint/layouts.py), its GELU and eps
        for size, letter in (("base", "b"), ("large", "l")):
            for img in (224, 384):
                if (patch, size, img) != (32, "large", 384):  # mindcv has no vit_l_32_384
                    table["vit_%s_%d_%d" % (letter, patch, img)] = dict(_size(size, patch, img), **MINDCV)
    table["vit_base_patch16_clip_224"] = dict(_size("base", 16, 224), **CLIP)
    table["vit_base_patch16_clip_quickgelu_224"] = dict(_size("base", 16, 224), act_layer="quick_gelu", num_classes=512,
                                                        **CLIP)
    table["vit_large_patch14_clip_224"] = dict(_size("large", 14, 224), **CLIP)
    table["vit_base_patch16_clip_384"] = dict(_size("base", 16, 384), **CLIP)
    table["vit_base_patch16_siglip_224"] = dict(_size("base", 16, 224), **SIGLIP)
    table["vit_base_patch16_siglip_384"] = dict(_size("base", 16, 384), **SIGLIP)
    table["vit_base_patch16_siglip_gap_224"] = dict(_size("base", 16, 224), class_token=False, global_pool="avg",
                                                    fc_norm=False, num_classes=0)
    dinov2 = dict(init_values=1e-5, num_classes=0)
    table["vit_small_patch14_dinov2"] = dict(_size("small", 14, 518), **dinov2)
    table["vit_small_patch14_reg4_dinov2"] = dict(_size("small", 14, 518), reg_tokens=4, no_embed_class=True, **dinov2)
    table["vit_base_patch14_reg4_dinov2"] = dict(_size("base", 14, 518), reg_tokens=4, no_embed_class=True, **dinov2)
    for size in ("small", "base"):
        table["deit3_%s_patch16_224" % size] = dict(_size(size, 16, 224), init_values=1e-6, no_embed_class=True)
    table["vit_quickstart"] = dict(img_size=24, patch_size=4, embed_dim=64, depth=4, num_heads=2, num_classes=10)
    return table


ARCHITECTURES = _architectures()


def default_num_classes(name: str) -> int:
    """The class count `create_model(name)` builds (timm's default for that name; 1000 if unknown)."""
    return ARCHITECTURES.get(name, {}).get("num_classes", 1000)


_DESCRIPTIONS = {"vit_quickstart": "a tiny ViT for the built-in digits example: 24 px, 4 px patches (36 + CLS "
                                   "tokens), width 64, 4 blocks"}


def _register(name: str, architecture: dict):
    def constructor(**overrides):
        """Overrides given as None keep the architecture's value."""
        return VisionTransformer(**{**architecture, **{k: v for k, v in overrides.items() if v is not None}})
    constructor.__name__ = name
    constructor.__doc__ = "%s: %s." % (name, _DESCRIPTIONS.get(name, "timm's architecture, %s" % architecture))
    register_model(constructor)


for _name, _architecture in ARCHITECTURES.items():
    _register(_name, _architecture)
