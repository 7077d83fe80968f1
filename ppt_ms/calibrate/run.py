"""calibrate(cfg, weights, images, out): a token-reduction schedule for a budget, from unlabelled images.

1. The images are split: every fourth file (in sorted order) is held out for the report, the rest
   calibrate.  The unreduced network's outputs on both are the reference (objective.py).
2. The search (search.py) scores schedules that meet the MACs budget (schedules.py) by their
   divergence on the calibration images and keeps the closest.
3. A speed budget (budget.speedup at budget.batch_size) is met by measurement: the schedule is
   timed side by side with the unreduced network (median over rounds of the time ratio); while it
   falls short, the MACs target is lowered by the shortfall and the search runs again (scores
   already measured are reused).
4. On the held-out images the report gives the chosen schedule's divergence next to the unreduced
   network's and the baselines' (constant-r ToMe; PPT at the paper's blocks), all within the budget.
OUT receives config.yaml (the config with the calibrated token_reduction: every tool reads it),
report.json and divergence_vs_macs.png, each written whole; OUT/calibration_progress.jsonl keeps
every scored schedule, so a calibration killed on the way resumes where it stopped.
"""
import os
import time
from functools import partial
from typing import Callable, Optional

import numpy as np
import mindspore as ms
from mindspore.nn.utils import no_init_parameters

from .. import reporting
from ..benchmark.timing import forward, paired_speedup, time_side_by_side
from ..builder import chosen_weights, prepare_for, setup_context
from ..checkpoint import load_pretrained
from ..config import dump_config, eval_batch_size, make_config
from ..data.loader import image_list_dataset
from ..data.image_folder import list_images
from ..errors import PPTMSError
from ..models import Features, create_model
from ..progress import Progress
from ..sweep.journal import SweepJournal, files_fingerprint, weights_fingerprint
from ..sweep.plot import line_plot
from . import schedules
from .objective import Objective, network_outputs
from .search import Search, baselines, describe, search_ppt, search_tome

JOURNAL = "calibration_progress.jsonl"
HELD_OUT_EVERY = 4
SPEED_ROUNDS = 5
SPEED_ATTEMPTS = 4


class CalibrationError(PPTMSError, ValueError):
    """A calibration that cannot be done as asked (budget, method, images)."""


class Networks:
    """The config's model with the weights `state` and a given token_reduction, as the tools run it
    for inference (Features for a model without classifier)."""

    def __init__(self, cfg, state):
        self.cfg, self.state = cfg, state

    def build(self, token_reduction):
        m = self.cfg["model"]
        net = create_model(m["name"], num_classes=m["num_classes"], img_size=m["img_size"],
                           token_reduction=token_reduction)
        load_pretrained(net, self.state)
        net.set_train(False)
        return prepare_for(self.cfg, Features(net) if m["num_classes"] == 0 else net, "inference")


def split_files(files):
    """(calibration files, held-out files): every HELD_OUT_EVERY-th file is held out (at least one
    of each when there are two files or more)."""
    held = [f for i, f in enumerate(files) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1] or files[-1:]
    calibration = [f for f in files if f not in held]
    if not calibration:
        raise CalibrationError("calibration needs at least 2 readable images (some to calibrate on, some held "
                               "out for the report); found %d" % len(files))
    return calibration, held


def model_shape(cfg):
    """(depth, tokens entering the first block, prefix tokens) of the config's model."""
    m = cfg["model"]
    with no_init_parameters():
        net = create_model(m["name"], num_classes=m["num_classes"], img_size=m["img_size"])
    return len(net.blocks), net.num_tokens, net.num_prefix_tokens


def check_request(cfg):
    """The method and budget, refused in one line when they cannot be calibrated."""
    method, budget = cfg["token_reduction"]["method"], cfg["budget"]
    if method == "none":
        raise CalibrationError("token_reduction.method is none: nothing to calibrate; set --token_reduction.method "
                               "tome, ppt or prune")
    if budget["macs"] is None and budget["speedup"] is None:
        raise CalibrationError("no budget: set --budget.macs (a fraction of the unreduced MACs, e.g. 0.6) and/or "
                               "--budget.speedup (e.g. 1.5, measured at --budget.batch_size)")
    m = cfg["model"]
    if method != "tome":  # PPT and pruning rank tokens by the class token's attention
        with no_init_parameters():
            create_model(m["name"], num_classes=m["num_classes"], img_size=m["img_size"],
                         token_reduction={"method": method, "r": 1, "layers": [1]})


def searcher(method: str, depth: int, tokens: int, prefix: int):
    """(search(Search, target) for the method, how many schedules one search scores at most);
    ToMe's r is at most half the input's tokens."""
    if method == "tome":
        return (lambda search, target: search_tome(search, depth, target, (tokens - prefix) // 2),
                len(schedules.SLOPES) + 4)
    count = len(schedules.layer_sets(depth)) * len(schedules.PPT_SHAPES)
    return (lambda search, target: search_ppt(search, method, depth, target, tokens - prefix),
            count + (len(schedules.PPT_THRESHOLDS) if method == "ppt" else 0))


def least_reachable(method, depth, tokens, prefix, budget) -> float:
    """The smallest MACs fraction the method's schedules reach on this model."""
    if method == "tome":
        makes = [lambda s, slope=slope: schedules.tome(depth, s, slope) for slope in schedules.SLOPES]
        high = (tokens - prefix) // 2
    else:
        makes = [lambda s, layers=layers, shape=shape: schedules.ppt(layers, s, shape, schedules.PAPER_THRESHOLD, method)
                 for layers in schedules.layer_sets(depth) for shape in schedules.PPT_SHAPES]
        high = tokens - prefix
    return min(budget.fraction(schedules.largest_valid(make, budget, high)[1]) for make in makes)


def calibrate(cfg, weights: Optional[str], images: str, out_dir: str, log: Callable[[str], None] = print) -> dict:
    """Calibrate cfg's token_reduction method to cfg's budget on the images below `images`; writes
    OUT/config.yaml, report.json and divergence_vs_macs.png; returns the report."""
    started = time.perf_counter()
    check_request(cfg)
    weights = chosen_weights(weights, cfg["model"]["pretrained"], needed_for="to calibrate")
    m, tr_cfg, wanted = cfg["model"], cfg["token_reduction"], cfg["budget"]
    method = tr_cfg["method"]
    depth, tokens, prefix = model_shape(cfg)
    budget = schedules.Budget(m["name"], m["img_size"], m["num_classes"])
    target = min(wanted["macs"] or 1.0, 1.0 / wanted["speedup"] if wanted["speedup"] else 1.0)
    floor = least_reachable(method, depth, tokens, prefix, budget)
    if floor > target:
        raise CalibrationError("the budget cannot be met: %s reaches at most %.3f of the unreduced MACs on %s (asked: "
                               "%.3f); raise budget.macs%s" % (method, floor, m["name"], target,
                                                               " or lower budget.speedup" if wanted["speedup"] else ""))
    listed = list_images(images, cfg["data"]["verify_images"])
    if not listed.files:
        raise CalibrationError("no readable images in '%s'%s" % (images, "".join("; " + n for n in listed.notes())))
    for note in listed.notes():
        log("%s: %s" % (images, note))
    calibration_files, held_files = split_files(listed.files)
    setup_context(cfg["system"])
    probe = create_model(m["name"], num_classes=m["num_classes"], img_size=m["img_size"])
    load_pretrained(probe, weights, use_ema=m["use_ema"])
    state = {p.name: p.asnumpy() for p in probe.get_parameters()}
    networks, objective = Networks(cfg, state), Objective(m["num_classes"])
    batch = eval_batch_size(cfg)
    data = {name: image_list_dataset(cfg["data"], files, m["img_size"], batch)
            for name, files in (("calibration", calibration_files), ("held_out", held_files))}
    unreduced = networks.build({"method": "none"})
    reference = {name: network_outputs(unreduced, dataset) for name, dataset in data.items()}
    del unreduced

    def score(token_reduction):
        outputs = network_outputs(networks.build(token_reduction), data["calibration"])
        return objective.per_image(reference["calibration"], outputs), objective.flipped(reference["calibration"],
                                                                                         outputs)
    journal = SweepJournal(os.path.join(out_dir, JOURNAL), {
        "task": "calibration", "model": m["name"], "img_size": m["img_size"], "num_classes": m["num_classes"],
        "weights": weights_fingerprint(state), "objective": objective.name,
        "images": "%s (%d files, %s)" % (os.path.abspath(images), len(listed.files), files_fingerprint(listed.files)),
        "device": cfg["system"]["device_target"], "amp": "%s %s" % (cfg["system"]["amp_level"],
                                                                  cfg["system"]["amp_dtype"])})
    for note in journal.notes:
        log(note)
    if journal.rows:
        log("%s: %d schedules already scored, reused" % (journal.path, len(journal.rows)))
    log("calibrating %s on %s: %d images (%d held out), %s" % (
        method, m["name"], len(listed.files), len(held_files), objective.name))
    run_search, count = searcher(method, depth, tokens, prefix)
    with Progress("calibrate", count, "schedules") as progress:
        search = Search(budget, score, journal, log, progress)
        chosen, speed = run_search(search, target), None
        if wanted["speedup"]:
            chosen, speed, target = meet_speedup(cfg, networks, search, run_search, chosen, target, log)
    search.progress = None
    visited = [s.row() for s in search.scored.values()]  # before the baselines are scored too
    report = held_out_report(cfg, networks, objective, reference, data, chosen, search, depth, tokens, prefix,
                             budget, target)
    report["visited"] = visited
    report.update(weights=os.path.abspath(weights), budget={"macs": wanted["macs"], "speedup": wanted["speedup"], "batch_size": wanted["batch_size"],
                          "macs_target": target},
                  images={"folder": os.path.abspath(images), "calibration": len(calibration_files),
                          "held_out": len(held_files), "left_out": listed.notes()},
                  speed=speed, seconds=time.perf_counter() - started,
                  machine={"cpu": _cpu(), "cpu_count": os.cpu_count()})
    write_outputs(cfg, report, out_dir)
    return report


def _cpu() -> str:
    from ..benchmark.run import cpu_model
    return cpu_model()


def meet_speedup(cfg, networks, search, run_search, chosen, target, log):
    """Lower the MACs target until the chosen schedule measures at least budget.speedup over the
    unreduced network at budget.batch_size -> (schedule, speed report, target)."""
    wanted = cfg["budget"]
    speed = None
    for attempt in range(SPEED_ATTEMPTS):
        speed = measure_speedup(cfg, networks, chosen.token_reduction, wanted["batch_size"])
        log("  measured speed-up %.2fx [%.2f, %.2f] at batch %d (MACs %.3f; wanted %.2fx)" % (
            speed["median"], speed["q1"], speed["q3"], wanted["batch_size"], chosen.macs_fraction, wanted["speedup"]))
        if speed["median"] >= wanted["speedup"]:
            return chosen, speed, target
        target = chosen.macs_fraction * speed["median"] / wanted["speedup"]
        chosen = run_search(search, target)
    raise CalibrationError("budget.speedup %.2f was not reached: the last schedule measured %.2fx at batch %d after "
                           "%d attempts (MACs %.3f); this device may not turn fewer MACs into time at this batch "
                           "size" % (wanted["speedup"], speed["median"], wanted["batch_size"], SPEED_ATTEMPTS,
                                     chosen.macs_fraction))


def measure_speedup(cfg, networks, token_reduction, batch_size: int) -> dict:
    """Median over SPEED_ROUNDS rounds of (unreduced time / reduced time), timed side by side."""
    img = cfg["model"]["img_size"]
    images = ms.Tensor(np.random.default_rng(0).standard_normal((batch_size, 3, img, img)).astype(np.float32))
    calls = {"none": partial(forward, networks.build({"method": "none"}), images),
             "calibrated": partial(forward, networks.build(token_reduction), images)}
    timings = time_side_by_side(calls, warmup=1, repeats=SPEED_ROUNDS)
    q1, median, q3 = paired_speedup(timings["none"].seconds, timings["calibrated"].seconds)
    return {"median": median, "q1": q1, "q3": q3, "batch_size": batch_size, "rounds": SPEED_ROUNDS}


def held_out_report(cfg, networks, objective, reference, data, chosen, search, depth, tokens, prefix, budget,
                    target) -> dict:
    def held_out(token_reduction):
        return objective.summary(reference["held_out"], network_outputs(networks.build(token_reduction),
                                                                        data["held_out"]))

    def entry(token_reduction):
        with no_init_parameters():
            net = create_model(cfg["model"]["name"], num_classes=cfg["model"]["num_classes"],
                               img_size=cfg["model"]["img_size"], token_reduction=token_reduction)
        scored = search.score(token_reduction, "baseline")
        return {"token_reduction": token_reduction, "schedule": describe(token_reduction),
                "tokens_per_block": list(net.tokens_per_block), "macs_fraction": budget.fraction(token_reduction),
                "gmacs": budget.macs(token_reduction) / 1e9, "calibration_divergence": scored.divergence,
                "held_out": held_out(token_reduction)}
    method = cfg["token_reduction"]["method"]
    tr_max = (tokens - prefix) // 2 if method == "tome" else tokens - prefix
    return {"model": cfg["model"]["name"], "method": method, "objective": objective.name,
            "unreduced_gmacs": budget.unreduced / 1e9,
            "chosen": entry(chosen.token_reduction),
            "baselines": {name: entry(tr) for name, tr in baselines(method, depth, budget, target, tr_max).items()}}


def write_outputs(cfg, report, out_dir):
    """config.yaml, report.json and divergence_vs_macs.png, each through a temporary file."""
    os.makedirs(out_dir, exist_ok=True)
    tr = dict(cfg["token_reduction"].to_dict(), **report["chosen"]["token_reduction"])
    model = dict(cfg["model"].to_dict(), pretrained=report["weights"])
    calibrated = make_config(dict(cfg.to_dict(), token_reduction=tr, model=model))
    _atomic(os.path.join(out_dir, "config.yaml"), lambda path: dump_config(calibrated, path))
    _atomic(os.path.join(out_dir, "report.json"), lambda path: reporting.write_json(report, path))
    series = {"visited schedules": [(row["macs_fraction"], row["divergence"]) for row in report["visited"]]}
    for name, entry in report["baselines"].items():
        series[name] = [(entry["macs_fraction"], entry["calibration_divergence"])]
    chosen = report["chosen"]
    series["calibrated"] = [(chosen["macs_fraction"], chosen["calibration_divergence"])]
    title = "%s %s on the calibration images" % (report["model"], report["method"])
    _atomic(os.path.join(out_dir, "divergence_vs_macs.png"),
            lambda path: line_plot(series, series["calibrated"], "MACs / unreduced MACs",
                                   Objective(cfg["model"]["num_classes"]).short + " (lower is closer)", title, path,
                                   scattered=list(series), front_label="chosen"))


def _atomic(path, write):
    root, extension = os.path.splitext(path)
    temporary = root + ".tmp" + extension  # the extension tells Pillow the format
    write(temporary)
    os.replace(temporary, path)
