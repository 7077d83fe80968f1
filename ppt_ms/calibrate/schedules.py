"""Candidate schedules that meet a MACs budget, counted from the token plan alone (no run).

A schedule is a token_reduction section.  ToMe's is a per-block r list shaped by a slope:
r_i = floor(scale * (1 + slope * (2 i / (D - 1) - 1))), flat at slope 0 (ToMe's constant r), more
merging late for slope > 0, early for slope < 0.  PPT's is a set of reducing blocks, an r per
block shaped the same way, and the threshold.  For a shape, `fit` finds the smallest scale whose
MACs are within the budget: the least reduction that meets it.
"""
import itertools
import math
from typing import Callable, List, Optional, Sequence, Tuple

from ..flops import count_macs_for
from ..sweep.journal import setting_key

SLOPES = (-0.8, -0.4, 0.0, 0.4, 0.8)
PPT_SHAPES = (0.0, -0.5, 0.5)  # uniform r, more early, more late
PPT_THRESHOLDS = (0.0, 2e-5, 7e-5, 2e-4, float("inf"))  # 0: always prune, inf: always pool
PAPER_THRESHOLD = 7e-5
PAPER_LAYERS = (3, 6, 9)  # of 12 blocks: PPT-DeiT-S, r 50


class Budget:
    """MACs of schedules of one model, as a fraction of the unreduced model's."""

    def __init__(self, model: str, img_size: int, num_classes: int):
        self.model, self.img_size, self.num_classes = model, img_size, num_classes
        self.counted = {}
        self.unreduced = self.macs({"method": "none"})

    def macs(self, token_reduction) -> Optional[int]:
        """MACs per image, or None when the model refuses the schedule (r beyond its tokens)."""
        key = setting_key(token_reduction)
        if key not in self.counted:
            try:
                self.counted[key] = count_macs_for(self.model, token_reduction, self.img_size, self.num_classes).total
            except ValueError:
                self.counted[key] = None
        return self.counted[key]

    def fraction(self, token_reduction) -> Optional[float]:
        """MACs / unreduced MACs, or None when the model refuses the schedule."""
        macs = self.macs(token_reduction)
        return None if macs is None else macs / self.unreduced


def shaped(values: int, scale: float, slope: float) -> List[int]:
    """`values` non-negative ints, floor(scale * (1 + slope * t)) with t from -1 to 1."""
    if values == 1:
        return [max(0, int(math.floor(scale)))]
    return [max(0, int(math.floor(scale * (1.0 + slope * (2.0 * i / (values - 1) - 1.0))))) for i in range(values)]


STEPS = 20  # bisection steps on the scale: a 1e-6 relative bracket, finer than one token


def largest_valid(make: Callable[[float], dict], budget: Budget, high: float) -> Tuple[float, dict]:
    """(scale, make(scale)) at the largest scale in [0, high] the model accepts (validity falls
    with the scale)."""
    if budget.fraction(make(high)) is not None:
        return high, make(high)
    low = 0.0
    for _ in range(STEPS):
        middle = (low + high) / 2
        low, high = (middle, high) if budget.fraction(make(middle)) is not None else (low, middle)
    return low, make(low)


def fit(make: Callable[[float], dict], budget: Budget, target: float, high: float) -> Optional[dict]:
    """The schedule make(scale) with the smallest scale in [0, high] whose MACs fraction is at most
    `target`, or None when no accepted scale gets there."""
    high, top = largest_valid(make, budget, high)
    reached = budget.fraction(top)
    if reached is None or reached > target:
        return None
    low = 0.0
    for _ in range(STEPS):
        middle = (low + high) / 2
        candidate = make(middle)
        fraction = budget.fraction(candidate)
        if fraction is not None and fraction <= target:
            high, top = middle, candidate
        else:
            low = middle
    return top


def tome(depth: int, scale: float, slope: float) -> dict:
    return {"method": "tome", "r": shaped(depth, scale, slope), "prop_attn": True}


def ppt(layers: Sequence[int], scale: float, slope: float, threshold: float, method: str = "ppt") -> dict:
    return {"method": method, "layers": list(layers), "r": shaped(len(layers), scale, slope),
            "threshold": threshold, "prop_attn": True}


def paper_layers(depth: int) -> List[int]:
    """PPT's reducing blocks 3, 6, 9 of 12, at the same depths of a `depth`-block model."""
    return sorted({min(depth - 1, max(1, round(layer * depth / 12))) for layer in PAPER_LAYERS})


def layer_sets(depth: int) -> List[List[int]]:
    """The reducing-block sets PPT's search tries: every set of 1-3 blocks after the first on a
    shallow model; on a deep one, the paper's blocks shifted by -1 and +1, two and four
    evenly spaced blocks."""
    if depth <= 6:
        blocks = range(1, depth)
        return [list(s) for size in (1, 2, 3) for s in itertools.combinations(blocks, size)]
    paper = paper_layers(depth)
    sets = [paper, [max(1, b - 1) for b in paper], [min(depth - 1, b + 1) for b in paper],
            [round(depth / 3), round(2 * depth / 3)], [round(depth * k / 6) for k in (1, 2, 3, 4)]]
    unique = []
    for s in sets:
        s = sorted(set(s))
        if s not in unique:
            unique.append(s)
    return unique
