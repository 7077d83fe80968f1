"""The accuracy/cost trade-off: Pareto front and picking a setting for a target."""
from typing import List, Optional, Sequence


def pareto_front(costs: Sequence[Optional[float]], accuracies: Sequence[float]) -> List[bool]:
    """True for every point no other point dominates (cost <= and accuracy >=,
    one of them strictly).  Lower cost is better; a None cost (not measured) is
    never on the front.  Equal points are all on the front."""
    front = []
    for i, (cost, accuracy) in enumerate(zip(costs, accuracies)):
        if cost is None:
            front.append(False)
            continue
        dominated = any(other is not None and other <= cost and other_acc >= accuracy
                        and (other < cost or other_acc > accuracy)
                        for j, (other, other_acc) in enumerate(zip(costs, accuracies)) if j != i)
        front.append(not dominated)
    return front


def pick_setting(rows, max_macs: Optional[float] = None, min_speedup: Optional[float] = None, score: str = "top1"):
    """The best-scoring row (`score`: top1, or cosine for embedding sweeps) with macs <= max_macs
    and speedup >= min_speedup (either target may be None); ties go to fewer MACs, then more images/s.

    rows: dicts with the score, 'macs', 'speedup' (None if unmeasured), 'images_per_s'.
    Raises ValueError naming the closest misses when no row meets the targets."""
    if max_macs is None and min_speedup is None:
        raise ValueError("give a target: max_macs and/or min_speedup")
    if min_speedup is not None and all(row["speedup"] is None for row in rows):
        raise ValueError("a speed-up target needs the baseline: include 'none' in the methods")

    def meets(row):
        return ((max_macs is None or row["macs"] <= max_macs)
                and (min_speedup is None or (row["speedup"] is not None and row["speedup"] >= min_speedup)))

    candidates = [row for row in rows if meets(row)]
    if not candidates:
        fewest = min(row["macs"] for row in rows)
        fastest = max((row["speedup"] for row in rows if row["speedup"] is not None), default=None)
        raise ValueError("no setting meets the target (MACs <= %s, speed-up >= %s); the sweep's lowest MACs is "
                         "%.4f G and its highest speed-up %s" % (
                             "-" if max_macs is None else "%.4f G" % (max_macs / 1e9),
                             "-" if min_speedup is None else "%.2fx" % min_speedup, fewest / 1e9,
                             "-" if fastest is None else "%.2fx" % fastest))
    return max(candidates, key=lambda row: (row[score], -row["macs"], row["images_per_s"] or 0.0))
