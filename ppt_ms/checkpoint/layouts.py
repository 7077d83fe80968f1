"""Other key layouts of the same ViT, renamed to timm's (ppt_ms's) names.

- mindcv >= 0.3 (timm's layout in MindSpore): nn.LayerNorm names its parameters gamma and beta,
  so norm1.gamma / norm1.beta are norm1.weight / norm1.bias; everything else is timm's name.
- mindcv 0.2 (ViT = backbone + head): backbone.transformer.layers.<i>.<0 attention, 1 MLP>.cell.<k>...
  with the norms at cell.0, the attention (qkv, out) or the MLP (dense1, dense2) at cell.1;
  backbone.patch_embedding.conv, backbone.cls_token, backbone.pos_embedding, backbone.norm,
  head.classifier.

Both build GELU with MindSpore's default, the tanh approximation, and LayerNorm with eps 1e-7:
ppt_ms's mindcv names (vit_b_16_224, ...) do the same, so that their logits equal mindcv's.
"""
import re
from typing import Dict, Mapping, Optional, Tuple

import numpy as np

MINDCV_ACTIVATION, MINDCV_NORM_EPS = "gelu_tanh", 1e-7
_NORM_GAMMA_BETA = re.compile(r"^((?:.*\.)?(?:norm\d*|norm_pre|fc_norm))\.(gamma|beta)$")
_GAMMA_BETA = {"gamma": "weight", "beta": "bias"}
_V02_BLOCK = re.compile(r"^backbone\.transformer\.layers\.(\d+)\.([01])\.cell\.([01])\.(.+)$")
_V02_BLOCK_PARTS = {("0", "0"): "norm1", ("0", "1"): "attn", ("1", "0"): "norm2", ("1", "1"): "mlp"}
_V02_INNER = {"out.": "proj.", "dense1.": "fc1.", "dense2.": "fc2."}
_V02_TOP = {"backbone.cls_token": "cls_token", "backbone.cls": "cls_token", "backbone.pos_embedding": "pos_embed",
            "backbone.patch_embedding.conv.weight": "patch_embed.proj.weight",
            "backbone.patch_embedding.conv.bias": "patch_embed.proj.bias", "backbone.norm.gamma": "norm.weight",
            "backbone.norm.beta": "norm.bias", "head.classifier.weight": "head.weight",
            "head.classifier.bias": "head.bias"}


def to_timm_names(state: Mapping[str, np.ndarray]) -> Tuple[Dict[str, np.ndarray], Optional[str]]:
    """-> (state under timm's names, the layout it was read as: 'mindcv 0.2', 'mindcv 0.3', or None
    when it already has timm's names)."""
    if any(key.startswith("backbone.transformer.layers.") for key in state):
        return {_v02_name(key): value for key, value in state.items()}, "mindcv 0.2"
    if any(_NORM_GAMMA_BETA.match(key) for key in state):
        return {_v03_name(key): value for key, value in state.items()}, "mindcv 0.3"
    return dict(state), None


def layout_note(layout: Optional[str]) -> Optional[str]:
    """The line that says a checkpoint was read in another layout (None for timm's own)."""
    return "read as %s's key layout, renamed to timm's" % layout if layout else None


def _v03_name(key: str) -> str:
    match = _NORM_GAMMA_BETA.match(key)
    return "%s.%s" % (match.group(1), _GAMMA_BETA[match.group(2)]) if match else key


def _v02_name(key: str) -> str:
    if key in _V02_TOP:
        return _V02_TOP[key]
    match = _V02_BLOCK.match(key)
    if not match:
        return key
    index, branch, cell, rest = match.groups()
    part = _V02_BLOCK_PARTS[(branch, cell)]
    if part.startswith("norm"):
        rest = _GAMMA_BETA.get(rest, rest)
    for old, new in _V02_INNER.items():
        if rest.startswith(old):
            rest = new + rest[len(old):]
    return "blocks.%s.%s.%s" % (index, part, rest)
