"""Token-reduction settings: the methods, every key's default, and the checks that span keys.

The one source of truth for the config schema (ppt_ms.config) and the models
(models.VisionTransformer); no MindSpore here.
"""
from typing import Mapping, Optional

METHODS = ("none", "ppt", "tome", "prune")

DEFAULTS = {
    "method": "none",
    "r": 0,                  # tokens removed per reducing block (an int, or one per entry of layers)
    "layers": [3, 6, 9],     # PPT/prune: 0-based indices of the reducing blocks
    "threshold": 7.0e-5,     # PPT: score variance below -> pool, at or above -> prune
    "inflection": None,      # ToMe: (r, inflection) schedule; None = constant r
    "prop_attn": True,       # proportional attention (log of token sizes) after the first reduction
    "trace_source": False,   # also return which input patches each final token covers
}


def check_combination(settings: Mapping):
    """ValueError naming the key when keys that are valid alone do not fit together."""
    method, r, layers = settings["method"], settings["r"], settings["layers"]
    if method in ("ppt", "prune"):
        if not layers:
            raise ValueError(f"config key 'token_reduction.layers': method '{method}' needs at "
                             "least one block index, got []")
        if isinstance(r, list) and len(r) != len(layers):
            raise ValueError(
                f"config key 'token_reduction.r': with method '{method}' a list gives one value "
                f"per entry of token_reduction.layers {layers}, so it needs {len(layers)} "
                f"values, got {len(r)}: {r}")
    if settings["inflection"] is not None:
        if method in ("ppt", "prune"):
            raise ValueError(
                f"config key 'token_reduction.inflection': got {settings['inflection']!r}, but it is "
                f"ToMe's (r, inflection) schedule and method '{method}' does not use it; "
                "set it to null or use method 'tome'")
        if isinstance(r, list):
            raise ValueError(
                f"config key 'token_reduction.inflection': ToMe's (r, inflection) schedule "
                f"needs an int token_reduction.r, got the list {r}")


def complete(token_reduction: Optional[Mapping]) -> dict:
    """A token_reduction mapping with the defaults filled in; ValueError on an unknown key or a
    negative threshold."""
    settings = dict(DEFAULTS)
    if token_reduction is not None:
        unknown = sorted(set(token_reduction) - set(settings))
        if unknown:
            raise ValueError("unknown token_reduction key(s) %s; valid keys: %s" % (unknown, sorted(settings)))
        settings.update(dict(token_reduction))
    if settings["threshold"] is None or settings["threshold"] < 0:
        raise ValueError("token_reduction.threshold must be >= 0, got %r" % settings["threshold"])
    return settings
