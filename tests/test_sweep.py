"""Sweeps: grid parsing and points, Pareto front and target selection on
hand-made data, the plots, and a small real sweep on the quick-start ViT."""
import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import mindspore as ms
from PIL import Image

from ppt_ms.config import ConfigError, make_config, parse_cli
from ppt_ms.flops import count_macs_for
from ppt_ms.sweep import (SweepPoint, line_plot, nice_ticks, override_flags, pareto_front, parse_grid,
                          parse_methods, pick_setting, run_sweep, split_values, sweep_points, write_results)
from ppt_ms.sweep.plot import BACKGROUND, COLOURS, FRONT
from helpers.paths import QUICKSTART, ROOT, load_tool
from ppt_ms.evaluate import evaluate


# ---------------------------------------------------------------- grid

def test_grid_values_split_on_top_level_commas():
    assert split_values("8,13,16") == ["8", "13", "16"]
    assert split_values("[3,6,9], [2,5]") == ["[3,6,9]", "[2,5]"]
    for bad in ("[3,6", "3]", "8,,13"):
        with pytest.raises(ConfigError):
            split_values(bad)


def test_parse_grid_accepts_token_reduction_keys_only():
    grid = parse_grid(["token_reduction.r=8,13", "token_reduction.layers=[1,2],[2,3]"])
    assert grid == {"r": ["8", "13"], "layers": ["[1,2]", "[2,3]"]}
    cases = {"model.img_size=32,64": "only token_reduction keys",
             "token_reduction.method=ppt,tome": "--methods",
             "token_reduction.rr=1": "not a swept",
             "token_reduction.r": "must look like"}
    for item, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            parse_grid([item])
    with pytest.raises(ConfigError, match="given twice"):
        parse_grid(["token_reduction.r=1", "token_reduction.r=2"])
    with pytest.raises(ConfigError, match="subset of"):
        parse_methods("none,tomme")


def test_points_leave_out_keys_a_method_does_not_use():
    grid = parse_grid(["token_reduction.r=4,8", "token_reduction.threshold=0,1"])
    labels = [p.label() for p in sweep_points(grid, ["none", "tome", "ppt", "prune"])]
    assert labels == ["none", "tome r=4", "tome r=8",
                      "ppt r=4 threshold=0", "ppt r=4 threshold=1", "ppt r=8 threshold=0", "ppt r=8 threshold=1",
                      "prune r=4", "prune r=8"]


def test_override_flags_reproduce_the_point():
    base = make_config({"model": {"name": "vit_quickstart", "num_classes": 10, "img_size": 32},
                        "token_reduction": {"method": "tome", "r": 8, "inflection": -0.5}})
    point = SweepPoint("ppt", (("r", "13"), ("threshold", "7e-5"), ("layers", "[1,2]")))
    flags = override_flags(point, base)
    assert flags == ("--token_reduction.method ppt --token_reduction.r 13 --token_reduction.threshold 7e-05 "
                     "--token_reduction.layers 1 2 --token_reduction.inflection null")
    tool_cfg, _ = parse_cli(["--model.name", "vit_quickstart", "--model.num_classes", "10", "--model.img_size",
                             "32", "--token_reduction.method", "tome", "--token_reduction.r", "8",
                             "--token_reduction.inflection", "-0.5"] + flags.split())
    expected = {"method": "ppt", "r": 13, "threshold": 7e-5, "layers": [1, 2], "inflection": None}
    assert {k: tool_cfg["token_reduction"][k] for k in expected} == expected


# ---------------------------------------------------------------- Pareto front and targets

def test_pareto_front_on_hand_made_points():
    costs = [1, 2, 2, 3, 4, None, 1]
    accuracy = [70, 75, 74, 75, 80, 90, 70]
    # C (2, 74) loses to B (2, 75); D (3, 75) to B; F has no cost; A and G are equal, both kept
    assert pareto_front(costs, accuracy) == [True, True, False, False, True, False, True]


ROWS = [
    {"label": "none", "top1": 80.0, "macs": 4.6e9, "speedup": 1.0, "images_per_s": 10.0},
    {"label": "tome r=8", "top1": 79.0, "macs": 3.4e9, "speedup": 1.3, "images_per_s": 13.0},
    {"label": "ppt r=13", "top1": 79.5, "macs": 3.0e9, "speedup": 1.4, "images_per_s": 14.0},
    {"label": "ppt r=16", "top1": 79.5, "macs": 2.9e9, "speedup": 1.35, "images_per_s": 13.5},
    {"label": "tome r=16", "top1": 77.0, "macs": 2.3e9, "speedup": 1.9, "images_per_s": 19.0},
]


def test_target_selection_on_hand_made_rows():
    pick = lambda **target: pick_setting(ROWS, **target)["label"]  # noqa: E731
    assert pick(max_macs=5e9) == "none"
    assert pick(max_macs=3.0e9) == "ppt r=16"            # tie on top-1 with r=13: fewer MACs wins
    assert pick(max_macs=3.2e9, min_speedup=1.38) == "ppt r=13"
    assert pick(min_speedup=1.5) == "tome r=16"
    with pytest.raises(ValueError, match="lowest MACs is 2.3000 G"):
        pick_setting(ROWS, max_macs=1e9)
    with pytest.raises(ValueError, match="include 'none'"):
        pick_setting([dict(row, speedup=None) for row in ROWS], min_speedup=1.2)


# ---------------------------------------------------------------- plots

def test_nice_ticks_cover_the_range_in_round_steps():
    for low, high in ((0.0112, 0.0151), (77.0, 80.0), (3, 3), (2.3, 4.6), (10, 381.6)):
        ticks = nice_ticks(low, high)
        steps = np.diff(ticks)
        assert ticks[0] <= low and ticks[-1] >= high and len(ticks) >= 2
        np.testing.assert_allclose(steps, steps[0])
        mantissa = steps[0] / 10 ** np.floor(np.log10(steps[0]))
        assert min(abs(mantissa - m) for m in (1, 2, 5)) < 1e-9


def test_line_plot_draws_every_curve_and_the_front(tmp_path):
    path = line_plot({"none": [(4.6, 80.0)], "tome": [(3.4, 79.0), (2.3, 77.0)], "ppt": [(3.0, 79.5)]},
                     [(4.6, 80.0), (3.0, 79.5), (2.3, 77.0)], "GMACs", "top-1 (%)", "test", str(tmp_path / "p.png"))
    pixels = np.array(Image.open(path).convert("RGB")).reshape(-1, 3)
    colours = {tuple(p) for p in pixels}
    assert (pixels != BACKGROUND).any(axis=1).sum() > 1000
    for colour in (COLOURS["none"], COLOURS["tome"], COLOURS["ppt"], FRONT):
        assert colour in colours


# ---------------------------------------------------------------- a real sweep

@pytest.fixture(scope="module")
def tiny_val(tmp_path_factory):
    """10 classes x 2 random 32 px images in root/val/<class>/."""
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    for label in range(10):
        folder = root / "val" / str(label)
        folder.mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / ("%d.png" % i))
    return str(root)


def tiny_cfg(root):
    return make_config({"model": {"name": "vit_quickstart", "num_classes": 10, "img_size": 32},
                        "data": {"path": root, "num_workers": 1, "crop_pct": 1.0},
                        "eval": {"batch_size": 20},
                        "token_reduction": {"method": "ppt", "layers": [1, 2]}})


def test_sweep_on_the_quickstart_model(tiny_val, tmp_path):
    ms.set_context(mode=ms.PYNATIVE_MODE)  # one graph compile per point would dominate the test
    cfg = tiny_cfg(tiny_val)
    items = ["token_reduction.r=0,8", "token_reduction.threshold=0,1e9"]
    rows = run_sweep(cfg, items, ["none", "ppt"], log=lambda line: None)
    assert [row["label"] for row in rows] == ["none", "ppt r=0 threshold=0", "ppt r=0 threshold=1e9",
                                              "ppt r=8 threshold=0", "ppt r=8 threshold=1e9"]
    assert [row["final_tokens"] for row in rows] == [65, 65, 65, 49, 49]
    for row in rows:
        tr = {"method": row["method"], "layers": [1, 2], **row["settings"]}
        assert row["macs"] == count_macs_for("vit_quickstart", tr, 32, 10).total
        assert row["top1"] * 20 / 100 == pytest.approx(round(row["top1"] * 20 / 100))  # k of 20 images
    # r=0 removes nothing: the same network with the same (shared) weights as none
    assert rows[1]["loss"] == rows[2]["loss"] == rows[0]["loss"]
    assert rows[3]["loss"] != rows[0]["loss"]
    assert rows[0]["speedup"] == 1.0

    written = write_results(rows, ["r", "threshold"], str(tmp_path), {"title": "tiny"})
    with open(tmp_path / "sweep.csv") as handle:
        table = list(csv.DictReader(handle))
    assert [(t["method"], t["r"], t["threshold"]) for t in table] == [
        ("none", "", ""), ("ppt", "0", "0.0"), ("ppt", "0", "1000000000.0"), ("ppt", "8", "0.0"),
        ("ppt", "8", "1000000000.0")]
    with open(tmp_path / "sweep.json") as handle:
        assert [r["label"] for r in json.load(handle)["rows"]] == [r["label"] for r in rows]
    for name in ("accuracy_vs_macs.png", "accuracy_vs_speed.png"):
        assert str(tmp_path / name) in written
        pixels = np.array(Image.open(tmp_path / name).convert("RGB")).reshape(-1, 3)
        assert (pixels != BACKGROUND).any(axis=1).sum() > 1000


def test_sweep_tool_prints_flags_for_a_target(tiny_val, tmp_path):
    command = [sys.executable, os.path.join(ROOT, "tools", "sweep.py"), "--config", QUICKSTART,
               "--data.path", tiny_val, "--data.num_workers", "1", "--eval.batch_size", "20",
               "--system.mode", "pynative", "--grid", "token_reduction.r=4,8", "--methods", "none,tome",
               "--out", str(tmp_path), "--target_macs", "0.0125"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    # MACs: none 15.1 M, tome r=4 13.3 M, tome r=8 11.2 M: only r=8 fits 12.5 M
    assert "use: --token_reduction.method tome --token_reduction.r 8" in run.stdout
    assert os.path.isfile(tmp_path / "sweep.csv")

    bad = command[:command.index("--grid") + 1] + ["model.img_size=32,64", "--out", str(tmp_path)]
    run = subprocess.run(bad, capture_output=True, text=True, timeout=600)
    assert run.returncode != 0 and "only token_reduction keys" in run.stderr


# ---------------------------------------------------------------- resuming

class Killed(Exception):
    pass


def counting_evaluate(calls, stop_after=None):
    """ppt_ms.evaluate.evaluate that records each call and raises Killed after `stop_after` calls."""
    def run(net, dataset):
        if stop_after is not None and len(calls) == stop_after:
            raise Killed()
        calls.append(net)
        return evaluate(net, dataset)
    return run


def same_table(rows, others):
    """Equal rows but for the measured speeds (and float rounding of the loss between runs)."""
    assert len(rows) == len(others)
    for row, other in zip(rows, others):
        keys = set(row) - {"images_per_s", "speedup", "pareto_speed"}
        assert keys == set(other) - {"images_per_s", "speedup", "pareto_speed"}
        for key in keys:
            assert row[key] == (pytest.approx(other[key], rel=1e-6) if isinstance(other[key], float) else other[key])
    return True


def test_a_killed_sweep_resumes_where_it_stopped(tiny_val, tmp_path, pynative):
    """Killed after its first setting, the sweep run again measures only the others and gives the
    table of an unbroken run; a truncated last line is measured again.  (Each run starts from the
    same seed: without weights, the journal would see other random weights.)"""
    cfg, items, methods = tiny_cfg(tiny_val), ["token_reduction.r=4,8"], ["none", "tome"]
    journal = str(tmp_path / "resumed" / "sweep_progress.jsonl")

    def sweep(**kwargs):
        ms.set_seed(0)
        return run_sweep(cfg, items, methods, **kwargs)
    first = []
    with pytest.raises(Killed):
        sweep(evaluate_fn=counting_evaluate(first, stop_after=1), journal_path=journal, log=lambda line: None)
    assert len(first) == 1
    second, lines = [], []
    resumed = sweep(evaluate_fn=counting_evaluate(second), journal_path=journal, log=lines.append)
    assert len(second) == 2 and "1 of 3 settings already measured, skipped" in lines[0]
    unbroken = sweep(log=lambda line: None)
    assert same_table(resumed, unbroken)

    with open(journal, "rb+") as handle:  # a kill while the last row was written
        handle.truncate(os.path.getsize(journal) - 10)
    third, lines = [], []
    again = sweep(evaluate_fn=counting_evaluate(third), journal_path=journal, log=lines.append)
    assert len(third) == 1 and "cut short" in lines[0] and "2 of 3 settings already measured" in lines[1]
    assert same_table(again, unbroken)


def test_a_journal_of_other_weights_or_images_is_refused_in_one_line(tiny_val, tmp_path, capsys):
    out, data = str(tmp_path / "sweep"), tmp_path / "data"
    shutil.copytree(tiny_val, data)
    command = ["--config", QUICKSTART, "--data.path", str(data), "--data.num_workers", "1", "--eval.batch_size", "20",
               "--model.img_size", "32", "--system.mode", "pynative", "--grid", "token_reduction.r=4",
               "--methods", "none,tome", "--out", out]
    sweep = load_tool("sweep")
    assert sweep.main(command) == 0
    assert sweep.main(command) == 0 and "2 of 2 settings already measured" in capsys.readouterr().out
    assert sweep.main(command + ["--system.seed", "1"]) == 1  # other random weights
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a sweep of another weights" in err[0] and "start fresh" in err[0]
    extra = data / "val" / "0" / "extra.png"
    shutil.copy(data / "val" / "1" / "0.png", extra)  # one more image in the val folder
    assert sweep.main(command) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a sweep of another images" in err[0] and "21 files" in err[0]
    extra.unlink()
    with open(os.path.join(out, "sweep_progress.jsonl"), "a") as handle:
        handle.write("not json\n")
    assert sweep.main(command) == 1
    assert "line 4 is not a journal record" in capsys.readouterr().err
