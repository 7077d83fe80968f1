"""The quick start: build the example data, train the tiny ViT, and compare
no reduction, ToMe and PPT on the same trained weights; then time the three
methods side by side on DeiT-S, where speed shows, and draw one token map."""
import glob
import os

from .benchmark import format_benchmark, run_benchmark
from .config import make_config
from .data import make_example_dataset
from .reporting import table
from .sweep import run_sweep, write_results
from .train import train
from .visualize import visualize

# ToMe merges in every block: r 4 there removes about as many MACs (23 %) as the config's PPT r 9 at blocks 1 and 2 (26 %)
TOME_R = 4
# the side-by-side speed check: PPT-DeiT-S as in the paper, random weights (speed does not depend on them);
# ToMe and PPT as the shipped configs run them on CPU (each reduction step one C++ kernel)
SPEED_CHECK = [("model.name", "deit_small_patch16_224"), ("model.num_classes", 1000), ("model.img_size", 224),
               ("model.pretrained", None), ("token_reduction.method", "ppt"), ("token_reduction.r", 50),
               ("token_reduction.layers", [3, 6, 9]), ("token_reduction.threshold", 7e-5),
               ("benchmark.batch_sizes", [8]), ("benchmark.compare", ["none", "tome-fused", "ppt-fused"]),
               ("benchmark.warmup", 1), ("benchmark.repeats", 5), ("benchmark.training", False),
               ("benchmark.isolate", False)]


def format_comparison(rows) -> str:
    """One line per method: tokens left, MACs, accuracy.  (No images/s: at 15 M MACs per
    image fixed per-kernel costs decide it; speed_check times a model where work does.)"""
    header = ("method", "final tokens", "MACs/image", "MACs vs none", "top-1 %", "top-5 %")
    lines = [header]
    none_macs = next((row["macs"] for row in rows if row["label"] == "none"), None)
    for row in rows:
        ratio = "%.2f" % (row["macs"] / none_macs) if none_macs else "-"
        lines.append((row["label"], str(row["final_tokens"]), "%.2f M" % (row["macs"] / 1e6), ratio,
                      "%.2f" % row["top1"], "%.2f" % row["top5"]))
    return "\n".join(table(lines, align="left"))


def run_quickstart(cfg, log=print):
    """Make cfg.data.path from scikit-learn's digits if needed, train cfg.model
    with cfg's token reduction, then evaluate the final weights with none, PPT
    (cfg's settings) and ToMe (r TOME_R).  Returns the
    comparison rows; the table, CSV, JSON and plots go to
    <train.output_dir>/comparison."""
    summary = make_example_dataset(cfg.data.path, image_size=cfg.model.img_size)
    log("example data in %s: %d train / %d val images, %d classes" % (
        cfg.data.path, summary["train"], summary["val"], len(summary["classes"])))
    result = train(cfg, log=log)
    weights = result.checkpoints[-1]
    log("\nevaluating %s with each method" % weights)
    rows = run_sweep(cfg, [], ["none", "ppt"], weights=weights, log=log)
    tome_cfg = make_config(cfg.to_dict(), [("token_reduction.r", TOME_R)])
    rows.insert(1, run_sweep(tome_cfg, [], ["tome"], weights=weights, log=log)[0])
    out_dir = os.path.join(cfg.train.output_dir, "comparison")
    write_results(rows, [], out_dir, {"model": cfg.model.name, "weights": weights, "data": cfg.data.path,
                                      "title": "%s on %s" % (cfg.model.name, cfg.data.path)})
    log("\n" + format_comparison(rows))
    log("\n(results in %s)" % out_dir)
    log("\n" + token_map(cfg, weights, out_dir))
    log("\nspeed side by side on DeiT-S (random weights; about a minute)")
    log(format_benchmark(speed_check(cfg)))
    return rows


def speed_check(cfg) -> dict:
    """none, ToMe (r 13) and PPT (r 50 at [3, 6, 9]) on DeiT-S at batch 8, side by side
    (tools/benchmark.py's measurement: paired per-round ratios)."""
    return run_benchmark(make_config(cfg.to_dict(), SPEED_CHECK))


def token_map(cfg, weights, out_dir) -> str:
    """One PPT token-map PNG from the trained model on the first validation digit; says where it went."""
    first = sorted(glob.glob(os.path.join(cfg.data.path, cfg.data.val_split, "*", "*")))[0]
    path = visualize(cfg, [first], out_dir, weights=weights, title="PPT in the trained %s" % cfg.model.name)[0]
    return "token map (PPT in the trained %s on %s): %s" % (cfg.model.name, first, path)
