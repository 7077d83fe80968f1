"""tools/calibrate.py: schedules within a budget (against the MACs counter), the label-free objective
(against NumPy written apart), the whole tool on the quick-start model (budget met, the config it
writes loads, same inputs give the same schedule, a killed run resumes), and bad input."""
import json
import os

import numpy as np
import pytest
import mindspore as ms
from safetensors.numpy import save_file

from helpers import numpy_reference as ref
from helpers.paths import QUICKSTART, load_tool
from ppt_ms.calibrate import CalibrationError, calibrate, run as calibration
from ppt_ms.calibrate import schedules
from ppt_ms.calibrate.objective import cosine_distance, kl_divergence
from ppt_ms.config import load_config
from ppt_ms.flops import count_macs_for

QUICKSTART_MACS = count_macs_for("vit_quickstart", {"method": "none"}, 24, 10).total


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """vit_quickstart weights under which reductions change the outputs (large q/k weights)."""
    path = tmp_path_factory.mktemp("weights") / "quickstart.safetensors"
    save_file(ref.random_state_dict(ref.timm_vit_shapes(24, 4, 64, 4, 10), seed=3, qk_gain=4.0), str(path))
    return str(path)


@pytest.fixture(scope="module")
def images(digits_subset):
    return str(digits_subset("calibration", {"val": 1}) / "val")  # 10 images: 8 calibrate, 2 held out


@pytest.mark.parametrize("target", [0.9, 0.75, 0.6])
@pytest.mark.parametrize("slope", [-0.4, 0.0, 0.8])
def test_a_fitted_schedule_is_the_least_reduction_of_its_shape_within_the_budget(target, slope):
    """Against a brute-force walk up the scale in steps of 0.01: the first schedule within the budget."""
    budget = schedules.Budget("vit_quickstart", 24, 10)
    tr = schedules.fit(lambda s: schedules.tome(4, s, slope), budget, target, 18)
    macs = {}
    first = None
    for step in range(1801):
        r = schedules.tome(4, step / 100, slope)["r"]
        if tuple(r) not in macs:
            try:
                macs[tuple(r)] = count_macs_for("vit_quickstart", {"method": "tome", "r": r}, 24, 10).total
            except ValueError:
                macs[tuple(r)] = None
        if macs[tuple(r)] is not None and macs[tuple(r)] <= target * QUICKSTART_MACS:
            first = r
            break
    assert (tr and tr["r"]) == first


def test_shapes_and_layer_sets():
    assert schedules.shaped(4, 10.0, 0.0) == [10, 10, 10, 10]
    assert schedules.shaped(3, 10.0, 0.5) == [5, 10, 15]
    assert schedules.paper_layers(12) == [3, 6, 9] and schedules.paper_layers(4) == [1, 2, 3]
    assert [3, 6, 9] in schedules.layer_sets(12) and [1, 2] in schedules.layer_sets(4)
    assert all(0 < b < 12 for s in schedules.layer_sets(12) for b in s)


def test_objectives_against_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((5, 7)), rng.standard_normal((5, 7))
    p = np.exp(a) / np.exp(a).sum(1, keepdims=True)
    q = np.exp(b) / np.exp(b).sum(1, keepdims=True)
    assert kl_divergence(a, b) == pytest.approx(np.mean(np.sum(p * np.log(p / q), axis=1)), rel=1e-12)
    assert kl_divergence(a, a) == pytest.approx(0.0, abs=1e-12)
    cos = [np.dot(x, y) / np.linalg.norm(x) / np.linalg.norm(y) for x, y in zip(a, b)]
    assert cosine_distance(a, b) == pytest.approx(1 - np.mean(cos), rel=1e-12)


class Killed(Exception):
    pass


@pytest.mark.parametrize("method", ["tome", "ppt"])
def test_calibration_meets_the_budget_writes_a_config_and_resumes(method, weights, images, tmp_path, pynative):
    cfg = load_config(QUICKSTART, ["token_reduction.method=%s" % method, "budget.macs=0.75", "system.mode=pynative"])
    out = str(tmp_path / "out")
    seen = []

    def kill_after_first(line):
        seen.append(line)
        if " MACs " in line:  # the line of a scored schedule, written after its journal record
            raise Killed()
    with pytest.raises(Killed):
        calibrate(cfg, weights, images, out, log=kill_after_first)
    assert not os.path.exists(os.path.join(out, "config.yaml"))  # nothing written half
    lines = []
    report = calibrate(cfg, weights, images, out, log=lines.append)
    assert any("1 schedules already scored, reused" in line for line in lines)
    chosen = report["chosen"]
    macs = count_macs_for("vit_quickstart", chosen["token_reduction"], 24, 10).total
    assert macs <= 0.75 * QUICKSTART_MACS and chosen["macs_fraction"] == pytest.approx(macs / QUICKSTART_MACS)
    visited = {json.dumps(v["token_reduction"], sort_keys=True): v["divergence"] for v in report["visited"]}
    assert visited[json.dumps(chosen["token_reduction"], sort_keys=True)] == chosen["calibration_divergence"]
    assert report["images"]["calibration"] == 8 and report["images"]["held_out"] == 2
    assert "constant-r ToMe" in report["baselines"] and (method == "tome") == ("paper PPT blocks" not in
                                                                             report["baselines"])
    written = load_config(os.path.join(out, "config.yaml"))
    assert written.token_reduction.method == method and written.token_reduction.r == chosen["token_reduction"]["r"]
    assert written.model.pretrained == os.path.abspath(weights)
    assert os.path.getsize(os.path.join(out, "divergence_vs_macs.png")) > 0
    again = calibrate(cfg, weights, images, str(tmp_path / "again"), log=lambda line: None)
    assert again["chosen"]["token_reduction"] == chosen["token_reduction"]


def test_the_written_config_runs_in_eval(weights, images, tmp_path, capsys, pynative):
    out = tmp_path / "out"
    argv = ["--config", QUICKSTART, "--ckpt", weights, "--images", images, "--out", str(out), "--budget.macs", "0.8",
            "--token_reduction.method", "tome", "--system.mode", "pynative"]
    assert load_tool("calibrate").main(argv) == 0
    assert "calibrated tome: tome r [" in capsys.readouterr().out
    digits = os.path.dirname(images)
    assert load_tool("eval").main(["--config", str(out / "config.yaml"), "--data.path", digits]) == 0
    assert "tome (r=[" in capsys.readouterr().out


def test_a_speed_budget_lowers_the_macs_target_until_it_is_measured(weights, images, tmp_path, monkeypatch,
                                                                    pynative):
    """With a device whose speed-up is MACs^-1: 1.5x needs at most 0.667 of the MACs; the first
    target (1/1.5) may land above it after rounding, and the loop lowers it by the shortfall."""
    measured = []

    def fake_speedup(cfg, networks, token_reduction, batch_size):
        fraction = count_macs_for("vit_quickstart", token_reduction, 24, 10).total / QUICKSTART_MACS
        measured.append(1.0 / fraction ** 0.5)  # a device that turns MACs into time poorly
        return {"median": measured[-1], "q1": measured[-1], "q3": measured[-1], "batch_size": batch_size, "rounds": 1}
    monkeypatch.setattr(calibration, "measure_speedup", fake_speedup)
    cfg = load_config(QUICKSTART, ["token_reduction.method=tome", "budget.speedup=1.3", "system.mode=pynative"])
    report = calibrate(cfg, weights, images, str(tmp_path / "out"), log=lambda line: None)
    assert len(measured) > 1 and measured[0] < 1.3 <= measured[-1] == report["speed"]["median"]


@pytest.mark.parametrize("case, expected", [
    ("empty", "no readable images"), ("unreadable", "no readable images"), ("budget", "cannot be met"),
    ("no budget", "no budget"), ("no class token", "no class token")])
def test_bad_input_is_one_line_and_writes_nothing(case, expected, weights, images, tmp_path, capsys):
    folder, argv = images, ["--budget.macs", "0.7"]
    if case == "empty":
        folder = str(tmp_path / "empty")
        os.makedirs(folder)
    elif case == "unreadable":
        folder = str(tmp_path / "broken")
        os.makedirs(folder)
        open(os.path.join(folder, "a.png"), "wb").close()
    elif case == "budget":
        argv = ["--budget.macs", "0.05"]
    elif case == "no budget":
        argv = []
    config = QUICKSTART
    if case == "no class token":
        argv += ["--token_reduction.method", "ppt", "--model.name", "vit_base_patch16_siglip_224",
                 "--model.img_size", "32", "--model.num_classes", "10"]
    out = tmp_path / "out"
    status = load_tool("calibrate").main(["--config", config, "--ckpt", weights, "--images", folder, "--out", str(out)]
                                         + argv)
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert status == 1 and len(err) == 1 and expected in err[0], err
    assert not out.exists()


def test_a_budget_above_one_is_refused_by_the_config(weights, images, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        load_tool("calibrate").main(["--config", QUICKSTART, "--ckpt", weights, "--images", images, "--out",
                                     str(tmp_path / "out"), "--budget.macs", "1.5"])
    assert stop.value.code == 2 and "budget.macs" in capsys.readouterr().err


@pytest.mark.parametrize("family", ["clip", "siglip", "dinov2_reg", "deit3"])
def test_every_family_calibrates_within_the_budget(family, images, tmp_path, monkeypatch):
    """The tiny timm-made family models (registered for this test): the budget is met, the schedule
    loads back through its config, and PPT is refused where there is no class token."""
    from test_families import FAMILIES, MANIFEST
    from ppt_ms.models import create_model, registry
    spec = MANIFEST["families"][family]
    name = "tiny_" + family
    monkeypatch.setitem(registry._MODELS, name,
                        lambda **kw: create_model(spec["model"], **{**spec["create_kwargs"], **kw}))
    img = spec["create_kwargs"]["img_size"]
    overrides = ["model.name=%s" % name, "model.img_size=%d" % img, "model.num_classes=10", "budget.macs=0.8",
                 "token_reduction.method=tome", "system.mode=pynative", "data.crop_pct=1.0"]
    cfg = load_config(QUICKSTART, overrides)
    weights = str(FAMILIES / family / "weights.safetensors")
    report = calibrate(cfg, weights, images, str(tmp_path / "out"), log=lambda line: None)
    unreduced = count_macs_for(name, {"method": "none"}, img, 10).total
    assert count_macs_for(name, report["chosen"]["token_reduction"], img, 10).total <= 0.8 * unreduced
    written = load_config(str(tmp_path / "out" / "config.yaml"))
    assert written.token_reduction.r == report["chosen"]["token_reduction"]["r"]
    if spec["num_prefix_tokens"] == 0 or family == "siglip":
        with pytest.raises(ValueError, match="no class token"):
            calibrate(load_config(QUICKSTART, overrides + ["token_reduction.method=ppt"]), weights, images,
                      str(tmp_path / "ppt"), log=lambda line: None)


def test_the_default_stays_unless_a_schedule_is_significantly_closer():
    from ppt_ms.calibrate.search import Scored, pick
    default = Scored({"method": "tome", "r": 5}, 0.7, 0.5, "slope +0.0", [0.5, 0.5, 0.5, 0.5], flipped=1)
    noisy = Scored({"method": "tome", "r": [6, 4]}, 0.7, 0.45, "slope", [0.1, 0.9, 0.1, 0.7], flipped=1)
    clear = Scored({"method": "tome", "r": [7, 3]}, 0.7, 0.3, "slope", [0.3, 0.31, 0.29, 0.3], flipped=1)
    flips = Scored({"method": "tome", "r": [8, 2]}, 0.7, 0.2, "slope", [0.2, 0.21, 0.19, 0.2], flipped=2)
    assert pick(default, [default, noisy]) is default  # mean 0.05 lower, standard error 0.2
    assert pick(default, [default, noisy, clear]) is clear
    assert pick(default, [default, flips]) is default  # closer, but changes one more top class
    assert pick(None, [noisy, clear, flips]) is flips
