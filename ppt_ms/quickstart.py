"""The quick start: build the example data, train the tiny ViT, and compare
no reduction, ToMe and PPT on the same trained weights."""
import os

from .data import make_example_dataset
from .sweep import run_sweep, write_results
from .train import train

METHODS = ("none", "tome", "ppt")


def format_comparison(rows) -> str:
    """One line per method: tokens left, MACs, accuracy, images/s, speed-up."""
    header = ("method", "final tokens", "MACs/image", "top-1 %", "top-5 %", "images/s", "vs none")
    lines = [header]
    for row in rows:
        speed = "%.0f" % row["images_per_s"] if row["images_per_s"] else "-"
        speedup = "%.2fx" % row["speedup"] if row["speedup"] else "-"
        lines.append((row["label"], str(row["final_tokens"]), "%.2f M" % (row["macs"] / 1e6), "%.2f" % row["top1"],
                      "%.2f" % row["top5"], speed, speedup))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)


def run_quickstart(cfg, log=print):
    """Make cfg.data.path from scikit-learn's digits if needed, train cfg.model
    with cfg's token reduction, then evaluate the final weights with every
    method in METHODS (cfg's settings for r, layers, threshold).  Returns the
    comparison rows; the table, CSV, JSON and plots go to
    <train.output_dir>/comparison."""
    summary = make_example_dataset(cfg.data.path, image_size=cfg.model.img_size)
    log("example data in %s: %d train / %d val images, %d classes" % (
        cfg.data.path, summary["train"], summary["val"], len(summary["classes"])))
    result = train(cfg, log=log)
    weights = result.checkpoints[-1]
    log("\nevaluating %s with each method" % weights)
    rows = run_sweep(cfg, [], list(METHODS), weights=weights, log=log)
    out_dir = os.path.join(cfg.train.output_dir, "comparison")
    write_results(rows, [], out_dir, {"model": cfg.model.name, "weights": weights, "data": cfg.data.path,
                                      "title": "%s on %s" % (cfg.model.name, cfg.data.path)})
    log("\n" + format_comparison(rows))
    log("\n(results in %s)" % out_dir)
    return rows
