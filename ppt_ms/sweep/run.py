"""Run a sweep: evaluate every setting on the same weights and images, then
write the table (CSV, JSON) and the trade-off plots."""
import csv
import logging
import os

from ..builder import build_model, model_token_reduction, prepare_for
from ..checkpoint import load_pretrained
from ..data import create_dataset
from ..evaluate import evaluate
from ..flops import count_macs_for
from .. import reporting
from .grid import override_flags, parse_grid, sweep_points
from .pareto import pareto_front
from .plot import line_plot

logger = logging.getLogger(__name__)
COLUMNS = ("final_tokens", "gmacs", "top1", "top5", "loss", "images_per_s", "speedup", "pareto_macs",
           "pareto_speed", "flags")


def check_points(points, cfg):
    """Build every point's config and token plan before anything is evaluated, so a
    bad value fails in seconds, naming the point.  -> [(point, config, MACs)]."""
    checked = []
    for point in points:
        point_cfg = point.config(cfg)
        m = point_cfg["model"]
        try:
            macs = count_macs_for(m["name"], model_token_reduction(point_cfg), m["img_size"], m["num_classes"])
        except ValueError as error:
            raise ValueError("sweep point '%s': %s" % (point.label(), error)) from None
        checked.append((point, point_cfg, macs.total))
    return checked


def reference_weights(cfg, weights):
    """The parameters every point starts from, as numpy arrays by name: `weights`
    (or model.pretrained), else one random initialisation shared by all points."""
    if not (weights or cfg["model"]["pretrained"]):
        logger.warning("no weights given (--ckpt or model.pretrained): every point uses the same random "
                       "initialisation, so the accuracies are those of an untrained network")
    net = build_model(cfg, weights)
    return {p.name: p.asnumpy() for p in net.get_parameters()}


def measure(point_cfg, state, dataset, evaluate_fn=evaluate):
    """(metrics with top1, top5, loss, images_per_second; final token count) of one point's network."""
    net = build_model(point_cfg)
    load_pretrained(net, state)
    return evaluate_fn(prepare_for(point_cfg, net, "inference"), dataset), net.tokens_per_block[-1]


def add_tradeoffs(rows):
    """Speed-up over the `none` row (if any) and Pareto membership, in place."""
    baseline = next((row["images_per_s"] for row in rows if row["method"] == "none"), None)
    for row in rows:
        speed = row["images_per_s"]
        row["speedup"] = speed / baseline if speed and baseline else None
    top1 = [row["top1"] for row in rows]
    for row, on_front in zip(rows, pareto_front([row["macs"] for row in rows], top1)):
        row["pareto_macs"] = on_front
    slowness = [-row["images_per_s"] if row["images_per_s"] else None for row in rows]
    for row, on_front in zip(rows, pareto_front(slowness, top1)):
        row["pareto_speed"] = on_front


def run_sweep(cfg, grid_items, methods, weights=None, evaluate_fn=evaluate, log=print):
    """Evaluate every grid point of every method on cfg's val split -> rows (dicts).

    evaluate_fn(net, dataset) -> metrics with top1, top5, loss, images_per_second
    (ppt_ms.evaluate.evaluate; images/s excludes each input shape's first, compiling call)."""
    grid = parse_grid(grid_items)
    checked = check_points(sweep_points(grid, methods), cfg)
    dataset = create_dataset(cfg["data"], "val", cfg["model"]["img_size"], cfg["model"]["num_classes"],
                             training=False, batch_size=cfg["eval"]["batch_size"])
    state = reference_weights(cfg, weights)
    rows = []
    for i, (point, point_cfg, macs) in enumerate(checked):
        metrics, tokens = measure(point_cfg, state, dataset, evaluate_fn)
        tr = point_cfg["token_reduction"]
        row = {"method": point.method, "settings": {key: tr[key] for key, _ in point.settings},
               "label": point.label(),
               "flags": override_flags(point, cfg), "final_tokens": tokens, "macs": macs, "gmacs": macs / 1e9,
               "top1": metrics.top1, "top5": metrics.top5, "loss": metrics.loss,
               "images_per_s": metrics.images_per_second}
        rows.append(row)
        log("[%d/%d] %s: top-1 %.2f %%, %.4f GMACs, %s images/s" % (
            i + 1, len(checked), row["label"], row["top1"], row["gmacs"],
            "%.1f" % row["images_per_s"] if row["images_per_s"] else "-"))
    add_tradeoffs(rows)
    return rows


def write_csv(rows, grid_keys, path):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("method",) + tuple(grid_keys) + COLUMNS)
        for row in rows:
            settings = [row["settings"].get(key, "") for key in grid_keys]
            values = ["" if row[c] is None else ("%.6g" % row[c] if isinstance(row[c], float) else row[c])
                      for c in COLUMNS]
            writer.writerow([row["method"]] + settings + values)


def write_json(rows, context, path):
    reporting.write_json(dict(context, rows=rows), path)


def curve_name(row):
    """The curve a row belongs to: its method, plus its settings other than r
    (so a threshold sweep gives one r-curve per threshold)."""
    others = ["%s=%s" % (key, value) for key, value in row["settings"].items() if key != "r"]
    return " ".join([row["method"]] + others)


def plot_tradeoffs(rows, out_dir, title):
    """accuracy_vs_macs.png and accuracy_vs_speed.png (the latter only with measured speeds)."""
    written = []
    for name, x_key, front_key, x_label in (("accuracy_vs_macs.png", "gmacs", "pareto_macs", "GMACs per image"),
                                            ("accuracy_vs_speed.png", "images_per_s", "pareto_speed", "images/s")):
        measured = [row for row in rows if row[x_key]]
        if not measured:
            continue
        series = {}
        for row in measured:
            series.setdefault(curve_name(row), []).append((row[x_key], row["top1"]))
        front = [(row[x_key], row["top1"]) for row in measured if row[front_key]]
        written.append(line_plot(series, front, x_label, "top-1 (%)", title, os.path.join(out_dir, name)))
    return written


def write_results(rows, grid_keys, out_dir, context):
    """sweep.csv, sweep.json and the plots in out_dir; returns the written paths."""
    os.makedirs(out_dir, exist_ok=True)
    csv_path, json_path = os.path.join(out_dir, "sweep.csv"), os.path.join(out_dir, "sweep.json")
    write_csv(rows, grid_keys, csv_path)
    write_json(rows, context, json_path)
    return [csv_path, json_path] + plot_tradeoffs(rows, out_dir, context.get("title", ""))
