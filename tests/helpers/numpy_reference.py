"""An independent NumPy reference of ViT/DeiT with PPT and ToMe token reduction.

Written from /work/shared/SPEC.md and the timm ViT definition, not from the
ppt_ms code: float64 throughout, one image at a time (so a "mixed batch" is by
construction each image alone), plain loops and np.argsort where the library
uses batched gathers.  Parameters are a dict of NumPy arrays under timm's
state_dict names.

Shapes (one image): x [N, C] tokens, token 0 is CLS (token 1 the distillation
token of a distilled DeiT); size [N, 1]; source [N, N0]; H heads of width d.

The families beyond DeiT (`Architecture`): registers after the class token, LayerScale,
a LayerNorm before the blocks, QuickGELU, a position embedding for the patches only, mean
pooling.  With registers, token reduction leaves the P prefix tokens (class token and
registers) alone: ToMe's matching runs on the patch tokens by themselves, as ToMe's code runs
it without a class token (unmerged tokens stay ranked by their best match); PPT scores the
patch tokens by the class token's attention, and pruning keeps the prefix first.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from scipy.special import erf

CLS_SCORE = 2.0
LN_EPS = 1e-6


# --------------------------------------------------------------------------- timm architecture

def timm_vit_shapes(img_size: int, patch_size: int, embed_dim: int, depth: int, num_classes: int,
                    mlp_ratio: float = 4.0, distilled: bool = False, in_chans: int = 3) -> Dict[str, tuple]:
    """Every parameter of timm's VisionTransformer / DistilledVisionTransformer: name -> shape."""
    num_tokens = (img_size // patch_size) ** 2 + (2 if distilled else 1)
    hidden = int(embed_dim * mlp_ratio)
    shapes = {"cls_token": (1, 1, embed_dim), "pos_embed": (1, num_tokens, embed_dim),
              "patch_embed.proj.weight": (embed_dim, in_chans, patch_size, patch_size),
              "patch_embed.proj.bias": (embed_dim,)}
    if distilled:
        shapes["dist_token"] = (1, 1, embed_dim)
    for i in range(depth):
        block = {"norm1.weight": (embed_dim,), "norm1.bias": (embed_dim,),
                 "attn.qkv.weight": (3 * embed_dim, embed_dim), "attn.qkv.bias": (3 * embed_dim,),
                 "attn.proj.weight": (embed_dim, embed_dim), "attn.proj.bias": (embed_dim,),
                 "norm2.weight": (embed_dim,), "norm2.bias": (embed_dim,),
                 "mlp.fc1.weight": (hidden, embed_dim), "mlp.fc1.bias": (hidden,),
                 "mlp.fc2.weight": (embed_dim, hidden), "mlp.fc2.bias": (embed_dim,)}
        shapes.update({"blocks.%d.%s" % (i, k): v for k, v in block.items()})
    shapes.update({"norm.weight": (embed_dim,), "norm.bias": (embed_dim,),
                   "head.weight": (num_classes, embed_dim), "head.bias": (num_classes,)})
    if distilled:
        shapes.update({"head_dist.weight": (num_classes, embed_dim), "head_dist.bias": (num_classes,)})
    return shapes


def random_state_dict(shapes: Dict[str, tuple], seed: int, qk_gain: float = 1.0) -> Dict[str, np.ndarray]:
    """Deterministic float32 test weights with enough structure that attention is
    not uniform: LayerNorm gains near 1, small biases, weights ~ N(0, 1/fan_in),
    the q and k rows of every qkv weight multiplied by `qk_gain`."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in sorted(shapes.items()):
        if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm.weight":
            value = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name.endswith("bias"):
            value = 0.05 * rng.standard_normal(shape)
        elif name in ("cls_token", "dist_token", "pos_embed"):
            value = 0.5 * rng.standard_normal(shape)
        else:
            fan_in = int(np.prod(shape[1:]))
            value = rng.standard_normal(shape) / np.sqrt(fan_in)
            if name.endswith("attn.qkv.weight"):
                value[: 2 * shape[1]] *= qk_gain
        params[name] = value.astype(np.float32)
    return params


def sample_images(seed: int, batch: int = 6, img_size: int = 32) -> np.ndarray:
    """[B, 3, H, W] float32 test images: image i is a sinusoid of frequency i+1
    plus Gaussian noise of strength i/B, so the images differ in how evenly
    their attention spreads over the patches."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((batch, 3, img_size, img_size))
    yy, xx = np.mgrid[0:img_size, 0:img_size] / img_size
    images = [np.sin(2 * np.pi * (xx * (i + 1) + yy))[None] + noise[i] * i / batch for i in range(batch)]
    return np.stack(images).astype(np.float32)


# --------------------------------------------------------------------------- layers

def layer_norm(x, weight, bias, eps: float = LN_EPS):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def gelu(x):
    """Exact GELU: x * Phi(x)."""
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def quick_gelu(x):
    """OpenAI CLIP's x * sigmoid(1.702 x)."""
    return x / (1.0 + np.exp(-1.702 * x))


def gelu_tanh(x):
    """GELU's tanh approximation (MindSpore's nn.GELU default, so mindcv's ViTs)."""
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


ACTIVATIONS = {"gelu": gelu, "quick_gelu": quick_gelu, "gelu_tanh": gelu_tanh}


def linear(x, weight, bias):
    return x @ weight.T + bias


def softmax(x, axis: int = -1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def patch_embed(image, weight, bias):
    """A p x p stride-p convolution: image [3, H, W] -> [(H/p)*(W/p), C], patches row-major."""
    channels, height, width = image.shape
    p = weight.shape[-1]
    grid_h, grid_w = height // p, width // p
    patches = image.reshape(channels, grid_h, p, grid_w, p).transpose(1, 3, 0, 2, 4)
    return patches.reshape(grid_h * grid_w, channels * p * p) @ weight.reshape(weight.shape[0], -1).T + bias


@dataclass
class AttentionOut:
    out: np.ndarray    # [N, C] after the output projection
    probs: np.ndarray  # [H, N, N] softmax attention
    k: np.ndarray      # [H, N, d]
    v: np.ndarray      # [H, N, d]


def attention(x, qkv_w, qkv_b, proj_w, proj_b, num_heads: int, size=None) -> AttentionOut:
    """Multi-head self-attention; with `size` [N, 1] proportional attention adds
    log(size of the key token) to every logit."""
    n, c = x.shape
    d = c // num_heads
    q, k, v = linear(x, qkv_w, qkv_b).reshape(n, 3, num_heads, d).transpose(1, 2, 0, 3)
    logits = q @ k.transpose(0, 2, 1) * d ** -0.5
    if size is not None:
        logits = logits + np.log(size[:, 0])[None, None, :]
    probs = softmax(logits, axis=-1)
    heads_out = (probs @ v).transpose(1, 0, 2).reshape(n, c)
    return AttentionOut(linear(heads_out, proj_w, proj_b), probs, k, v)


# --------------------------------------------------------------------------- PPT significance

def significance_scores(probs, v, registers: int = 0):
    """ATS significance: s_j = sum_h probs[h, 0, j] * ||v_j|| (v_j all heads
    concatenated), CLS and registers dropped, the rest normalised to sum 1, CLS and
    registers set to 2.  probs [H, N, N], v [H, N, d] -> [N]."""
    first = 1 + registers
    value_norm = np.sqrt((v ** 2).sum(axis=2).sum(axis=0))
    raw = probs[:, 0, :].sum(axis=0) * value_norm
    patches = raw[first:] / raw[first:].sum()
    return np.concatenate([[CLS_SCORE] * first, patches])


def score_variance(scores, ddof: int = 1, registers: int = 0) -> float:
    """Variance of the scores after CLS and registers; PPT uses the unbiased one (ddof=1)."""
    patches = scores[1 + registers:]
    return float(((patches - patches.mean()) ** 2).sum() / (len(patches) - ddof))


# --------------------------------------------------------------------------- ToMe

@dataclass
class Matching:
    unmerged: np.ndarray  # A indices that stay, ascending
    src: np.ndarray       # A indices merged away, strongest edge first
    dst: np.ndarray       # B index each src merges into


def bipartite_matching(metric, r: int, distill_token: bool = False, class_token: bool = True) -> Matching:
    """ToMe's bipartite soft matching of one image: metric [N, d]; A = even
    tokens, B = odd tokens.  With a class token, CLS (A 0) never merges and the
    unmerged A tokens are put back in order; without, they stay ranked by their
    best match.  Nothing merges into the distillation token (B 0).  Ties in edge
    strength keep A order."""
    m = metric / np.linalg.norm(metric, axis=-1, keepdims=True)
    similarity = m[0::2] @ m[1::2].T
    if class_token:
        similarity[0, :] = -np.inf
    if distill_token:
        similarity[:, 0] = -np.inf
    best = similarity.max(axis=1)
    partner = similarity.argmax(axis=1)
    by_strength = np.argsort(-best, kind="stable")
    src = by_strength[:r]
    unmerged = np.sort(by_strength[r:]) if class_token else by_strength[r:]
    return Matching(unmerged, src, partner[src])


def merge(t, matching: Matching, distill_token: bool = False, reduce: str = "sum"):
    """Apply a matching to t [N, K]: src rows are added (reduce='sum') or
    max-combined (reduce='max') into their B partner.  -> [N - r, K] in the
    order [unmerged A, all B], or [A0, B0, A1.., B1..] with a distillation token."""
    a, b = t[0::2], t[1::2].copy()
    combine = np.add if reduce == "sum" else np.maximum
    combine.at(b, matching.dst, a[matching.src])
    kept = a[matching.unmerged]
    if distill_token:
        return np.concatenate([kept[:1], b[:1], kept[1:], b[1:]])
    return np.concatenate([kept, b])


def merge_weighted(x, size, matching: Matching, distill_token: bool = False):
    """Size-weighted average of merged tokens; sizes add up."""
    total = merge(x * size, matching, distill_token)
    new_size = merge(size, matching, distill_token)
    return total / new_size, new_size


# --------------------------------------------------------------------------- pruning

def prune_order(scores, keep: int, distill_token: bool = False, prefix: int = 1):
    """Indices of the `keep` most significant tokens, most significant first
    (CLS first by its constant score; the distillation token second when
    protected; the `prefix` tokens first in their order).  Equal scores keep token order."""
    first = max(prefix, 2 if distill_token else 1)
    ranked = first + np.argsort(-np.asarray(scores)[first:], kind="stable")
    return np.concatenate([np.arange(first), ranked])[:keep]


# --------------------------------------------------------------------------- schedules

def tome_r_schedule(depth: int, r: Union[int, Sequence[int], Tuple[int, float]]) -> List[int]:
    """ToMe's r per block: int -> constant; list -> padded with 0; (r, inflection)
    -> linear from r*(1-inflection) to 2r - r*(1-inflection), floored."""
    if isinstance(r, list):
        return list(r) + [0] * (depth - len(r))
    inflection = 0.0
    if isinstance(r, tuple):
        r, inflection = r
    first = int(r * (1.0 - inflection))
    last = 2 * r - first
    step = (last - first) / (depth - 1)
    return [int(first + step * i) for i in range(depth)]


def applied_r(requested: int, num_tokens: int, protected: int) -> int:
    """What a block really removes: at most half of its unprotected tokens."""
    return max(0, min(requested, (num_tokens - protected) // 2))


def tokens_after_blocks(num_tokens: int, schedule: Sequence[int], protected: int = 1) -> List[int]:
    """Token count leaving each block for a requested r schedule."""
    counts = []
    for requested in schedule:
        num_tokens -= applied_r(requested, num_tokens, protected)
        counts.append(num_tokens)
    return counts


def ppt_r_schedule(depth: int, r: Union[int, Sequence[int]], layers: Sequence[int]) -> List[int]:
    """PPT's r per block: r (or r[i] for the i-th listed layer) in `layers`, 0 elsewhere."""
    per_layer = list(r) if isinstance(r, (list, tuple)) else [r] * len(layers)
    schedule = [0] * depth
    for layer, value in zip(layers, per_layer):
        schedule[layer] = value
    return schedule


# --------------------------------------------------------------------------- full model

@dataclass
class Reduction:
    """Token reduction of a reference forward pass.  method: none | tome | ppt | prune;
    for tome `r` is ToMe's r argument (int, list or (r, inflection)); for ppt and
    prune r applies to `layers`."""
    method: str = "none"
    r: Union[int, Sequence[int], Tuple[int, float]] = 0
    layers: Sequence[int] = ()
    threshold: float = 7e-5
    prop_attn: bool = True

    def schedule(self, depth: int) -> List[int]:
        if self.method == "none":
            return [0] * depth
        if self.method == "tome":
            return tome_r_schedule(depth, self.r)
        return ppt_r_schedule(depth, self.r, self.layers)


@dataclass
class ImageTrace:
    """Everything one image's forward pass decided."""
    logits: np.ndarray = None                   # [K]
    pre_logits: np.ndarray = None               # [C] the pooled, normed embedding the head reads
    size: np.ndarray = None                     # [N_final, 1]
    source: np.ndarray = None                   # [N_final, N0]
    tokens_per_block: List[int] = field(default_factory=list)
    pooled: Dict[int, bool] = field(default_factory=dict)      # PPT layer -> pooled?
    variance: Dict[int, float] = field(default_factory=dict)   # PPT layer -> unbiased variance
    block_outputs: List[np.ndarray] = field(default_factory=list)


@dataclass
class Architecture:
    """What timm's VisionTransformer options change in the forward pass (the prefix tokens and
    LayerScale follow from the parameters: cls_token, dist_token, reg_token, blocks.*.ls1.gamma)."""
    act: str = "gelu"              # or "quick_gelu", "gelu_tanh"
    norm_eps: float = LN_EPS
    no_embed_class: bool = False   # the position embedding covers the patches only
    global_pool: str = "token"     # or "avg": the mean of the tokens after the prefix, then fc_norm if present


def reduce_tokens(method: str, x, size, source, metric, scores, r: int, threshold: float,
                  distill_token: bool, prefix: int = 1, registers: int = 0, class_token: bool = True):
    """One image's reduction step -> (x, size, source, pooled or None, variance or None).
    With registers the `prefix` tokens stay as they are and the rest are matched on their own."""
    if method == "tome":
        pooled, variance = True, None
    elif method == "prune":
        pooled, variance = False, None
    else:
        variance = score_variance(scores, registers=registers)
        pooled = variance < threshold
    if pooled:
        kept = prefix if registers else 0
        matching = bipartite_matching(metric[kept:], r, distill_token, class_token and not registers)
        merged, new_size = merge_weighted(x[kept:], size[kept:], matching, distill_token)
        x = np.concatenate([x[:kept], merged])
        source = np.concatenate([source[:kept], merge(source[kept:], matching, distill_token, reduce="max")])
        size = np.concatenate([size[:kept], new_size])
    else:
        keep = prune_order(scores, len(x) - r, distill_token, prefix)
        x, size, source = x[keep], size[keep], source[keep]
    return x, size, source, (pooled if method == "ppt" else None), variance


def forward_image(params: Dict[str, np.ndarray], image, num_heads: int,
                  reduction: Optional[Reduction] = None, arch: Optional[Architecture] = None) -> ImageTrace:
    """The ViT forward pass of one image [3, H, W] with token reduction."""
    reduction, arch = reduction or Reduction(), arch or Architecture()
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    distilled = "dist_token" in p
    class_token = "cls_token" in p
    registers = p["reg_token"].shape[1] if "reg_token" in p else 0
    depth = len({k.split(".")[1] for k in p if k.startswith("blocks.")})
    protected = int(class_token) + int(distilled) + registers
    schedule = reduction.schedule(depth)
    act = ACTIVATIONS[arch.act]

    def norm(x, name):
        return layer_norm(x, p[name + ".weight"], p[name + ".bias"], arch.norm_eps)

    prefix = [p[k][0] for k in ("cls_token", "dist_token", "reg_token") if k in p]
    patches = patch_embed(np.asarray(image, np.float64), p["patch_embed.proj.weight"],
                          p.get("patch_embed.proj.bias", 0.0))
    if arch.no_embed_class:
        x = np.concatenate(prefix + [patches + p["pos_embed"][0]])
    else:
        x = np.concatenate(prefix + [patches]) + p["pos_embed"][0]
    if "norm_pre.weight" in p:
        x = norm(x, "norm_pre")
    n0 = len(x)
    size, source = np.ones((n0, 1)), np.eye(n0)
    trace = ImageTrace()
    for i in range(depth):
        b = "blocks.%d." % i
        gamma1, gamma2 = p.get(b + "ls1.gamma", 1.0), p.get(b + "ls2.gamma", 1.0)
        att = attention(norm(x, b + "norm1"), p[b + "attn.qkv.weight"], p[b + "attn.qkv.bias"],
                        p[b + "attn.proj.weight"], p[b + "attn.proj.bias"], num_heads,
                        size if reduction.prop_attn else None)
        x = x + gamma1 * att.out
        r = applied_r(schedule[i], len(x), protected)
        if r > 0:
            scores = significance_scores(att.probs, att.v, registers) if class_token else None
            x, size, source, pooled, variance = reduce_tokens(
                reduction.method, x, size, source, att.k.mean(axis=0), scores, r, reduction.threshold, distilled,
                protected, registers, class_token)
            if pooled is not None:
                trace.pooled[i], trace.variance[i] = pooled, variance
        hidden = act(linear(norm(x, b + "norm2"), p[b + "mlp.fc1.weight"], p[b + "mlp.fc1.bias"]))
        x = x + gamma2 * linear(hidden, p[b + "mlp.fc2.weight"], p[b + "mlp.fc2.bias"])
        trace.tokens_per_block.append(len(x))
        trace.block_outputs.append(x)
    if "norm.weight" in p:
        x = norm(x, "norm")
    if arch.global_pool == "avg":
        pooled_tokens = x[protected:].mean(axis=0)
        if "fc_norm.weight" in p:
            pooled_tokens = norm(pooled_tokens, "fc_norm")
    else:
        pooled_tokens = x[0]
    logits = linear(pooled_tokens, p["head.weight"], p["head.bias"])
    if distilled:
        logits = (logits + linear(x[1], p["head_dist.weight"], p["head_dist.bias"])) / 2
        pooled_tokens = (x[0] + x[1]) / 2
    trace.logits, trace.pre_logits, trace.size, trace.source = logits, pooled_tokens, size, source
    return trace


def forward(params, images, num_heads: int, reduction: Optional[Reduction] = None,
            arch: Optional[Architecture] = None) -> List[ImageTrace]:
    """forward_image for every image of a batch [B, 3, H, W]."""
    return [forward_image(params, image, num_heads, reduction, arch) for image in images]
