"""How many tokens each block removes, decided from the configuration alone.

The plan is static: it fixes every tensor shape of the reduced network, so
MindSpore can compile it once, and FLOPs can be counted without running it.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Union

from .settings import METHODS


@dataclass(frozen=True)
class BlockPlan:
    """What block `index` does: it receives `tokens_in` tokens and removes `r`
    of them with `method` (``none`` when it keeps all)."""
    index: int
    tokens_in: int
    r: int
    method: str

    @property
    def tokens_out(self) -> int:
        return self.tokens_in - self.r


def tome_schedule(depth: int, r: Union[int, Sequence[int]], inflection: Optional[float] = None) -> List[int]:
    """ToMe's r per block: a constant int, a per-block list padded with 0, or
    with `inflection` a linear ramp from r*(1-inflection) to 2r - r*(1-inflection),
    each value floored (the published parse_r, same float arithmetic)."""
    if isinstance(r, (list, tuple)):
        if inflection is not None:
            raise ValueError("token_reduction.inflection needs an int r, got the list %s" % list(r))
        if len(r) > depth:
            raise ValueError("token_reduction.r lists %d values but the model has only %d blocks" % (len(r), depth))
        return [int(v) for v in r] + [0] * (depth - len(r))
    if inflection is None:
        return [int(r)] * depth
    min_val = int(r * (1.0 - inflection))
    max_val = 2 * r - min_val
    step = (max_val - min_val) / (depth - 1) if depth > 1 else 0.0
    return [int(min_val + step * i) for i in range(depth)]


def layer_schedule(depth: int, r: Union[int, Sequence[int]], layers: Sequence[int]) -> List[int]:
    """PPT/prune r per block: `r` (an int, or one value per entry of `layers`)
    in the listed blocks, 0 elsewhere."""
    layers = list(layers)
    bad = [l for l in layers if not 0 <= l < depth]
    if bad:
        raise ValueError("token_reduction.layers %s out of range: the model has blocks 0..%d" % (bad, depth - 1))
    if len(set(layers)) != len(layers):
        raise ValueError("token_reduction.layers %s lists a block twice" % layers)
    if isinstance(r, (list, tuple)):
        if len(r) != len(layers):
            raise ValueError("token_reduction.r %s must give one value per entry of token_reduction.layers %s"
                             % (list(r), layers))
        per_layer = [int(v) for v in r]
    else:
        per_layer = [int(r)] * len(layers)
    schedule = [0] * depth
    for layer, value in zip(layers, per_layer):
        schedule[layer] = value
    return schedule


def token_plan(depth: int, num_tokens: int, method: str = "none", r: Union[int, Sequence[int]] = 0,
               layers: Sequence[int] = (), inflection: Optional[float] = None,
               num_prefix_tokens: int = 1) -> List[BlockPlan]:
    """Per-block plan for a ViT with `depth` blocks whose input has `num_tokens`
    tokens, `num_prefix_tokens` of them protected (CLS, distillation token).

    Each requested r is clamped to what bipartite matching can remove,
    (N - protected) // 2, as the published code does.  A request that cannot be
    meant is a configuration error, the same rule on every model: for PPT/prune,
    more tokens than the listed block receives; for ToMe, whose constant r is meant
    to shrink away in late blocks, more than bipartite matching can merge in the
    model's input ((N - protected) // 2 with N the input's tokens).
    """
    if method not in METHODS:
        raise ValueError("token_reduction.method %r is not one of %s" % (method, "|".join(METHODS)))
    if method == "none":
        requested = [0] * depth
    elif method == "tome":
        requested = tome_schedule(depth, r, inflection)
    else:
        requested = layer_schedule(depth, r, layers)
    plan, n = [], num_tokens
    for index, want in enumerate(requested):
        if want < 0:
            raise ValueError("token_reduction.r must be >= 0, block %d asks for %d" % (index, want))
        removable = n - num_prefix_tokens
        if method == "tome" and want > (num_tokens - num_prefix_tokens) // 2:
            raise ValueError(
                "token_reduction.r asks block %d to merge %d tokens but ToMe merges at most half of the %d tokens "
                "besides the %d protected one(s) (%d); lower r (with a constant r, later blocks merge fewer as "
                "tokens run out)" % (index, want, num_tokens - num_prefix_tokens, num_prefix_tokens,
                                     (num_tokens - num_prefix_tokens) // 2))
        if method != "tome" and want > removable:
            raise ValueError(
                "token_reduction.r asks block %d to remove %d tokens but it only has %d besides the %d protected "
                "token(s); lower r or use fewer/earlier layers" % (index, want, removable, num_prefix_tokens))
        applied = max(0, min(want, removable // 2))
        plan.append(BlockPlan(index, n, applied, method if applied > 0 else "none"))
        n -= applied
    return plan


def plan_from_config(tr_cfg, depth: int, num_tokens: int, num_prefix_tokens: int = 1) -> List[BlockPlan]:
    """`token_plan` for a `token_reduction` config section (mapping or None)."""
    if tr_cfg is None:
        return token_plan(depth, num_tokens, "none", num_prefix_tokens=num_prefix_tokens)
    get = tr_cfg.get
    return token_plan(depth, num_tokens, get("method", "none"), get("r", 0), get("layers", ()) or (),
                      get("inflection", None), num_prefix_tokens)
