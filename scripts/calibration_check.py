"""Calibrated schedules against the fixed ones on the trained quick-start model, by top-1 on the val
split.  The calibration sees only unlabelled images of the train split; the labels of the val split
are used here, for the check, and never by the calibration.

    python scripts/calibration_check.py --ckpt output/quickstart/step00001936.ckpt [--budgets 0.85 0.75 0.65]

For each budget: the calibrated ToMe schedule next to the constant-r ToMe that fills the budget (the
least r within it), and the calibrated PPT schedule next to PPT at the paper's blocks (3, 6, 9 of 12:
1, 2, 3 of 4) with a uniform r scaled to the calibrated schedule's MACs.  Prints a Markdown table;
--json writes the rows.
"""
import argparse
import json
import os
import sys
import tempfile

import mindspore as ms

from ppt_ms.builder import build_model, prepare_for
from ppt_ms.calibrate import calibrate
from ppt_ms.calibrate import schedules
from ppt_ms.checkpoint import load_pretrained
from ppt_ms.config import load_config
from ppt_ms.data import create_dataset
from ppt_ms.evaluate import evaluate
from ppt_ms.flops import count_macs_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(ROOT, "configs", "quickstart.yaml")


def top1(cfg, weights, token_reduction):
    net = build_model(cfg, token_reduction=token_reduction)
    load_pretrained(net, weights)
    dataset = create_dataset(cfg.data, "val", cfg.model.img_size, cfg.model.num_classes, training=False)
    return evaluate(prepare_for(cfg, net, "inference"), dataset).top1


def unlabelled_images(cfg, count, folder):
    """`count` train images (every k-th of the sorted split) copied into one folder without class names."""
    import shutil
    from ppt_ms.data import scan_split
    os.makedirs(folder)
    samples = scan_split(cfg.data.path, cfg.data.train_split).samples
    step = max(1, len(samples) // count)
    for i, (path, _) in enumerate(samples[::step][:count]):
        shutil.copy(path, os.path.join(folder, "%04d%s" % (i, os.path.splitext(path)[1])))
    return folder


def constant_r(cfg, macs_limit):
    """Constant-r ToMe settings with at most macs_limit MACs."""
    m = cfg.model
    found = []
    for r in range(1, 19):
        tr = {"method": "tome", "r": r, "prop_attn": True}
        try:
            macs = count_macs_for(m.name, tr, m.img_size, m.num_classes).total
        except ValueError:
            continue
        if macs <= macs_limit:
            found.append((tr, macs))
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--config", default=QUICKSTART)
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.85, 0.75, 0.65])
    parser.add_argument("--images", type=int, default=64, help="unlabelled calibration images from the train split")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        base = load_config(args.config, ["data.path=%s" % os.path.join(ROOT, "data", "digits")])
        images = unlabelled_images(base, args.images, os.path.join(scratch, "images"))
        ms.set_context(mode=ms.PYNATIVE_MODE)  # a tiny model: compiling each schedule would dominate
        m = base.model
        unreduced = count_macs_for(m.name, {"method": "none"}, m.img_size, m.num_classes).total
        for budget in args.budgets:
            for method in ("tome", "ppt"):
                cfg = load_config(args.config, ["data.path=%s" % base.data.path, "budget.macs=%s" % budget,
                                                "token_reduction.method=%s" % method, "system.mode=pynative"])
                report = calibrate(cfg, args.ckpt, images, os.path.join(scratch, "%s_%s" % (method, budget)),
                                   log=lambda line: None)
                chosen = report["chosen"]
                macs = chosen["gmacs"] * 1e9
                if method == "tome":  # the constant r that fills the budget: the least r within it
                    tr, fixed_macs = constant_r(cfg, budget * unreduced)[0]
                    baseline = ("constant-r ToMe (r %d)" % tr["r"], top1(cfg, args.ckpt, tr), fixed_macs)
                else:
                    budget_obj = schedules.Budget(m.name, m.img_size, m.num_classes)
                    tr = schedules.fit(lambda s: schedules.ppt(schedules.paper_layers(len(chosen["tokens_per_block"])),
                                                               s, 0.0, schedules.PAPER_THRESHOLD),
                                       budget_obj, chosen["macs_fraction"], 36)
                    baseline = ("PPT, paper's blocks %s, r %s" % (tr["layers"], tr["r"]), top1(cfg, args.ckpt, tr),
                                budget_obj.macs(tr))
                rows.append({"budget": budget, "method": method, "schedule": chosen["schedule"],
                             "macs_fraction": chosen["macs_fraction"], "top1": top1(cfg, args.ckpt,
                                                                                   chosen["token_reduction"]),
                             "baseline": baseline[0], "baseline_top1": baseline[1],
                             "baseline_macs_fraction": baseline[2] / unreduced, "seconds": report["seconds"]})
                print(json.dumps(rows[-1]), file=sys.stderr)
    none_top1 = top1(base, args.ckpt, {"method": "none"})
    print("| budget | method | calibrated schedule | MACs | top-1 % | fixed schedule | MACs | top-1 % |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print("| %.2f | %s | %s | %.3f | %.2f | %s | %.3f | %.2f |" % (
            row["budget"], row["method"], row["schedule"], row["macs_fraction"], row["top1"], row["baseline"],
            row["baseline_macs_fraction"], row["baseline_top1"]))
    print("(unreduced: top-1 %.2f %%)" % none_top1)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"rows": rows, "unreduced_top1": none_top1}, handle, indent=1)


if __name__ == "__main__":
    main()
