"""The search: which schedule within the budget keeps the outputs closest to the unreduced network's.

Every schedule it scores meets the budget by construction (schedules.fit), so the search only
compares divergences.  ToMe: the five slopes of schedules.SLOPES, then the best slope +-0.2 and
+-0.1 (a one-dimensional refinement).  PPT/prune: every reducing-block set of
schedules.layer_sets with a uniform, early-heavy and late-heavy r at the paper's threshold, then
PPT's thresholds on the best.  Each candidate costs one compile and one forward pass over the
calibration images; a finished one goes into the journal at once.

The default stays unless the images show better: constant r for ToMe, the paper's blocks with a
uniform r at its threshold for PPT.  Another schedule is chosen only when it is closer by more
than SIGNIFICANCE standard errors of the per-image difference of divergences (a paired test on
the same images) and changes the top class of no more calibration images than the default; on a
few dozen images many differences are noise, and the default is the setting people validated.
"""
import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np

from ..sweep.journal import setting_key
from . import schedules


SIGNIFICANCE = 2.0  # standard errors of the paired per-image difference


@dataclass
class Scored:
    token_reduction: dict
    macs_fraction: float
    divergence: float  # the mean of per_image
    stage: str  # which step of the search proposed it
    per_image: List[float] = field(default_factory=list)
    flipped: int = 0  # calibration images whose top class is not the unreduced network's

    def row(self) -> dict:
        return {"token_reduction": self.token_reduction, "macs_fraction": self.macs_fraction,
                "divergence": self.divergence, "stage": self.stage, "per_image": self.per_image,
                "flipped": self.flipped}


def significantly_closer(candidate: Scored, default: Scored) -> bool:
    """Whether `candidate` is closer than `default` on the same images by more than SIGNIFICANCE
    standard errors of the per-image difference."""
    if candidate.flipped > default.flipped:
        return False
    difference = np.asarray(default.per_image) - np.asarray(candidate.per_image)
    if len(difference) < 2:
        return bool(difference.mean() > 0)
    return bool(difference.mean() > SIGNIFICANCE * difference.std(ddof=1) / math.sqrt(len(difference)))


def pick(default: Optional[Scored], candidates: List[Optional[Scored]]) -> Scored:
    """The closest of the candidates that are significantly closer than `default`, else `default`
    (without a default: the closest)."""
    scored = [c for c in candidates if c is not None]
    if default is None:
        return min(scored, key=lambda c: (c.divergence, c.macs_fraction))
    better = [c for c in scored if c is not default and significantly_closer(c, default)]
    return min(better, key=lambda c: (c.divergence, c.macs_fraction)) if better else default


class Search:
    """Scores schedules once each (`score_fn(token_reduction) -> (per-image divergences, per-image
    top-class changes)`), remembering them in `journal` (a SweepJournal or None) so that a killed
    calibration resumes."""

    def __init__(self, budget: schedules.Budget, score_fn: Callable[[dict], tuple], journal=None,
                 log: Callable[[str], None] = print, progress=None):
        self.budget, self.score_fn, self.journal, self.log, self.progress = budget, score_fn, journal, log, progress
        self.scored: Dict[str, Scored] = {}

    def score(self, token_reduction: Optional[dict], stage: str) -> Optional[Scored]:
        if token_reduction is None:
            return None
        key = setting_key(token_reduction)
        if key in self.scored:
            return self.scored[key]
        if self.journal is not None and key in self.journal.rows:
            result = Scored(**self.journal.rows[key])
            if self.progress is not None:
                self.progress.skip()
        else:
            divergences, flipped = self.score_fn(token_reduction)
            per_image = [float(v) for v in divergences]
            result = Scored(token_reduction, self.budget.fraction(token_reduction), float(np.mean(per_image)), stage,
                            per_image, int(np.sum(flipped)))
            if self.journal is not None:
                self.journal.append(key, result.row())
            if self.progress is not None:
                self.progress.update()
            self.log("  %-10s MACs %.3f  divergence %.5f  %s" % (stage, result.macs_fraction, result.divergence,
                                                                describe(token_reduction)))
        self.scored[key] = result
        return result


def describe(token_reduction: dict) -> str:
    """'tome r [4, 6, 8, 10]' or 'ppt layers [3, 6, 9] r [50, 50, 50] threshold 7e-05'."""
    tr = token_reduction
    if tr["method"] == "tome":
        return "tome r %s" % tr["r"]
    text = "%s layers %s r %s" % (tr["method"], tr["layers"], tr["r"])
    return text + (" threshold %g" % tr["threshold"] if tr["method"] == "ppt" else "")


def tome_candidates(depth: int, budget: schedules.Budget, target: float, max_r: int, slopes) -> List[dict]:
    return [schedules.fit(lambda scale, s=slope: schedules.tome(depth, scale, s), budget, target, max_r)
            for slope in slopes]


def search_tome(search: Search, depth: int, target: float, max_r: int) -> Scored:
    found = {slope: search.score(tr, "slope %+.1f" % slope)
             for slope, tr in zip(schedules.SLOPES, tome_candidates(depth, search.budget, target, max_r,
                                                                    schedules.SLOPES))}
    best_slope = min((s for s, r in found.items() if r is not None), key=lambda s: found[s].divergence)
    for step in (0.2, 0.1):
        for slope in (round(best_slope - step, 2), round(best_slope + step, 2)):
            if slope not in found:
                tr = tome_candidates(depth, search.budget, target, max_r, [slope])[0]
                found[slope] = search.score(tr, "slope %+.2f" % slope)
        best_slope = min((s for s, r in found.items() if r is not None), key=lambda s: found[s].divergence)
    return pick(found.get(0.0), list(found.values()))


def ppt_candidates(method: str, layers, budget: schedules.Budget, target: float, max_r: int,
                   threshold: float, shapes=schedules.PPT_SHAPES) -> List[dict]:
    return [schedules.fit(lambda scale, s=shape: schedules.ppt(layers, scale, s, threshold, method), budget, target,
                          max_r) for shape in shapes]


def search_ppt(search: Search, method: str, depth: int, target: float, max_r: int) -> Scored:
    results, default = [], None
    for layers in schedules.layer_sets(depth):
        for shape, tr in zip(schedules.PPT_SHAPES, ppt_candidates(method, layers, search.budget, target, max_r,
                                                                  schedules.PAPER_THRESHOLD)):
            results.append(search.score(tr, "shape %+.1f" % shape))
            if layers == schedules.paper_layers(depth) and shape == 0.0:
                default = results[-1]
    best = pick(default, results)
    if method != "ppt":
        return best
    thresholds = [dict(best.token_reduction, threshold=t) for t in schedules.PPT_THRESHOLDS]
    return pick(best, [search.score(tr, "threshold") for tr in thresholds])


def baselines(method: str, depth: int, budget: schedules.Budget, target: float, max_r: int) -> Dict[str, dict]:
    """What the calibrated schedule is compared with on the held-out images: constant-r ToMe and,
    for PPT/prune, the paper's blocks at r proportional to its setting, each within the budget."""
    found = {"constant-r ToMe": tome_candidates(depth, budget, target, max_r, [0.0])[0]}
    if method != "tome":
        found["paper PPT blocks"] = ppt_candidates(method, schedules.paper_layers(depth), budget, target, max_r,
                                                   schedules.PAPER_THRESHOLD, shapes=[0.0])[0]
    return {name: tr for name, tr in found.items() if tr is not None}
