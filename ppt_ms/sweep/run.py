"""Run a sweep: evaluate every setting on the same weights and images, then
write the table (CSV, JSON) and the trade-off plots.

Scored by top-1 on the labelled val split, or, given a folder of images (no labels), by how
close each setting's embeddings stay to the unreduced ones (mean cosine similarity; embeddings.py)."""
import csv
import logging
import os

from ..builder import build_model, chosen_weights, model_token_reduction, prepare_for
from ..checkpoint import load_pretrained
from ..config import eval_batch_size
from ..data import create_dataset, create_image_dataset
from ..embeddings import embed, features_network, similarity, unreduced_network
from ..evaluate import evaluate
from ..flops import count_macs_for
from ..models import Features
from ..progress import Progress
from .. import reporting
from .grid import override_flags, parse_grid, sweep_points
from .journal import SweepJournal, files_fingerprint, setting_key, weights_fingerprint
from .pareto import pareto_front
from .plot import line_plot

logger = logging.getLogger(__name__)
# what a sweep is scored by -> (the row key that ranks settings, the columns it writes)
SCORES = {"accuracy": ("top1", ("top1", "top5", "loss")), "embedding": ("cosine", ("cosine", "min_cosine"))}
COST_COLUMNS = ("final_tokens", "gmacs")
TRADEOFF_COLUMNS = ("images_per_s", "speedup", "pareto_macs", "pareto_speed", "flags")


def columns(score: str):
    return COST_COLUMNS + SCORES[score][1] + TRADEOFF_COLUMNS


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


def measure(point_cfg, state, dataset, evaluate_fn=evaluate, wrap=None):
    """(metrics with top1, top5, loss, images_per_second; final token count) of one point's network
    (wrapped, as in Features(net), before it is prepared)."""
    net = build_model(point_cfg)
    load_pretrained(net, state)
    runnable = prepare_for(point_cfg, wrap(net) if wrap else net, "inference")
    return evaluate_fn(runnable, dataset), net.tokens_per_block[-1]


def evaluate_point(label: str):
    """ppt_ms.evaluate.evaluate with a progress display named after the point."""
    return lambda net, dataset: evaluate(net, dataset, what="sweep: " + label)


def add_tradeoffs(rows, score: str = "top1"):
    """Speed-up over the `none` row (if any) and Pareto membership by `score`, in place."""
    baseline = next((row["images_per_s"] for row in rows if row["method"] == "none"), None)
    for row in rows:
        speed = row["images_per_s"]
        row["speedup"] = speed / baseline if speed and baseline else None
    scores = [row[score] for row in rows]
    for row, on_front in zip(rows, pareto_front([row["macs"] for row in rows], scores)):
        row["pareto_macs"] = on_front
    slowness = [-row["images_per_s"] if row["images_per_s"] else None for row in rows]
    for row, on_front in zip(rows, pareto_front(slowness, scores)):
        row["pareto_speed"] = on_front


def embedding_scorer(cfg, state, dataset):
    """evaluate_fn(features, dataset) -> SimilarityMetrics of the embeddings against the unreduced
    network's on `dataset`."""
    reference, _ = embed(features_network(cfg, unreduced_network(cfg, state)), dataset)

    def score(features, data):
        embeddings, speed = embed(features, data)
        return similarity(embeddings, reference, speed)
    return score


def journal_identity(cfg, state, score: str, folder: str, files) -> dict:
    """What a sweep's rows were measured on (journal.py): everything but the swept settings;
    `files` are the images read below `folder`."""
    m, system = cfg["model"], cfg["system"]
    return {"model": m["name"], "img_size": m["img_size"], "num_classes": m["num_classes"],
            "weights": weights_fingerprint(state), "images": "%s (%d files, %s)" % (
                os.path.abspath(folder), len(files), files_fingerprint(files)),
            "score": score, "batch_size": eval_batch_size(cfg), "device": system["device_target"],
            "mode": system["mode"], "amp": "%s %s" % (system["amp_level"], system["amp_dtype"]),
            "cpu_kernels": m["cpu_kernels"]}


def run_sweep(cfg, grid_items, methods, weights=None, evaluate_fn=evaluate, log=print, images=None,
              journal_path=None):
    """Evaluate every grid point of every method on cfg's val split -> rows (dicts); with `images`
    (a folder, no labels needed), score the points by embedding similarity instead.  With
    `journal_path`, every finished point is appended there and a point already in it is not
    measured again (journal.py).

    evaluate_fn(net, dataset) -> metrics with top1, top5, loss, images_per_second
    (ppt_ms.evaluate.evaluate; images/s excludes each input shape's first, compiling call)."""
    grid = parse_grid(grid_items)
    checked = check_points(sweep_points(grid, methods), cfg)
    if images is not None:  # similarity to the unreduced network of random weights says nothing
        chosen_weights(weights, cfg["model"]["pretrained"], needed_for="to score embeddings with (--images)")
    state = reference_weights(cfg, weights)
    score, wrap = ("accuracy", None) if images is None else ("embedding", Features)
    if images is None:
        dataset = create_dataset(cfg["data"], "val", cfg["model"]["img_size"], cfg["model"]["num_classes"],
                                 training=False, batch_size=eval_batch_size(cfg))
        folder, files = os.path.join(cfg["data"]["path"], cfg["data"]["val_split"]), dataset.files
    else:
        dataset, files = create_image_dataset(cfg["data"], images, cfg["model"]["img_size"], eval_batch_size(cfg))
        folder = images
    journal = None
    if journal_path:
        journal = SweepJournal(journal_path, journal_identity(cfg, state, score, folder, files))
        for note in journal.notes:
            log(note)
        keys = {setting_key(point_cfg["token_reduction"].to_dict()) for _, point_cfg, _ in checked}
        done = sum(key in journal.rows for key in keys)
        if journal.rows:
            log("%s: %d of %d settings already measured, skipped%s" % (
                journal_path, done, len(checked), "; %d other settings there are not in this grid, left out"
                % (len(journal.rows) - done) if len(journal.rows) > done else ""))
    if images is not None:
        evaluate_fn = embedding_scorer(cfg, state, dataset)
    rows = []
    settings = Progress("sweep", len(checked), "settings")
    for i, (point, point_cfg, macs) in enumerate(checked):
        key = setting_key(point_cfg["token_reduction"].to_dict())
        if journal is not None and key in journal.rows:
            rows.append(journal.rows[key])
            settings.skip()
            continue
        scorer = evaluate_point(point.label()) if evaluate_fn is evaluate else evaluate_fn
        metrics, tokens = measure(point_cfg, state, dataset, scorer, wrap)
        tr = point_cfg["token_reduction"]
        row = {"method": point.method, "settings": {key: tr[key] for key, _ in point.settings},
               "label": point.label(),
               "flags": override_flags(point, cfg), "final_tokens": tokens, "macs": macs, "gmacs": macs / 1e9,
               "images_per_s": metrics.images_per_second}
        row.update({name: getattr(metrics, name) for name in SCORES[score][1]})
        rows.append(row)
        if journal is not None:
            journal.append(key, row)
        log("[%d/%d] %s: %s, %.4f GMACs, %s images/s" % (
            i + 1, len(checked), row["label"], score_text(row), row["gmacs"],
            "%.1f" % row["images_per_s"] if row["images_per_s"] else "-"))
        settings.update()
    settings.close()
    add_tradeoffs(rows, SCORES[score][0])
    return rows


def score_of(rows) -> str:
    """The row key a sweep's rows are ranked by."""
    return "cosine" if rows and "cosine" in rows[0] else "top1"


def score_text(row) -> str:
    """A row's score as printed: 'top-1 96.38 %' or 'cosine similarity 0.9871'."""
    return "top-1 %.2f %%" % row["top1"] if score_of([row]) == "top1" else "cosine similarity %.4f" % row["cosine"]


def write_csv(rows, grid_keys, path):
    written = columns("embedding" if score_of(rows) == "cosine" else "accuracy")
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("method",) + tuple(grid_keys) + written)
        for row in rows:
            settings = [row["settings"].get(key, "") for key in grid_keys]
            values = ["" if row[c] is None else ("%.6g" % row[c] if isinstance(row[c], float) else row[c])
                      for c in written]
            writer.writerow([row["method"]] + settings + values)


def write_json(rows, context, path):
    reporting.write_json(dict(context, rows=rows), path)


def curve_name(row):
    """The curve a row belongs to: its method, plus its settings other than r
    (so a threshold sweep gives one r-curve per threshold)."""
    others = ["%s=%s" % (key, value) for key, value in row["settings"].items() if key != "r"]
    return " ".join([row["method"]] + others)


def plot_tradeoffs(rows, out_dir, title):
    """accuracy_vs_macs.png and accuracy_vs_speed.png (the latter only with measured speeds); an
    embedding sweep plots the cosine similarity instead (similarity_vs_*.png)."""
    score = score_of(rows)
    stem, y_label = ("accuracy", "top-1 (%)") if score == "top1" else ("similarity", "cosine similarity")
    written = []
    for name, x_key, front_key, x_label in (("_vs_macs.png", "gmacs", "pareto_macs", "GMACs per image"),
                                            ("_vs_speed.png", "images_per_s", "pareto_speed", "images/s")):
        measured = [row for row in rows if row[x_key]]
        if not measured:
            continue
        series = {}
        for row in measured:
            series.setdefault(curve_name(row), []).append((row[x_key], row[score]))
        front = [(row[x_key], row[score]) for row in measured if row[front_key]]
        written.append(line_plot(series, front, x_label, y_label, title, os.path.join(out_dir, stem + name)))
    return written


def write_results(rows, grid_keys, out_dir, context):
    """sweep.csv, sweep.json and the plots in out_dir; returns the written paths."""
    os.makedirs(out_dir, exist_ok=True)
    csv_path, json_path = os.path.join(out_dir, "sweep.csv"), os.path.join(out_dir, "sweep.json")
    write_csv(rows, grid_keys, csv_path)
    write_json(rows, context, json_path)
    return [csv_path, json_path] + plot_tradeoffs(rows, out_dir, context.get("title", ""))
