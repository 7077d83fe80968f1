"""Benchmark: variants of one model and its weights, interleaved timing, the
JSON fields against count_macs and hand-computed token counts, the RSS probe,
and one real run of tools/benchmark.py on vit_quickstart (no speed ratios are
asserted: they depend on the machine)."""
import json
import os

import numpy as np
import pytest
import mindspore as ms
from PIL import Image
from mindspore import nn

from ppt_ms.benchmark import (PAPER_SETTINGS, BenchmarkError, Chained, ReductionStep, RssProbe, training_step_call,
                              build_variants, marginal_per_round, paired_speedup, random_block_inputs, throughput,
                              time_side_by_side, variant_configs)
from ppt_ms.builder import prepare_for
from ppt_ms.formulations import FusedReducer, native
from ppt_ms.config import ConfigError, load_config
from ppt_ms.flops import count_macs_for
from ppt_ms.data import sample_images
from ppt_ms.benchmark.isolated import merge_reports
from ppt_ms.benchmark.ops_profile import profile_ops
from helpers.paths import QUICKSTART, load_tool


pytestmark = pytest.mark.usefixtures("graph_module")


def quickstart(*overrides):
    return load_config(QUICKSTART, list(overrides))


# ---- variants ----

def test_own_method_keeps_its_settings_others_take_paper_defaults():
    cfg = quickstart("benchmark.compare=[none, tome, ppt, prune]")
    configs = variant_configs(cfg)
    assert list(configs) == ["none", "tome", "ppt", "prune"]
    ppt = configs["ppt"].token_reduction
    assert (ppt.method, ppt.r, ppt.layers, ppt.threshold) == ("ppt", 9, [1, 2], 7e-5)
    tome = configs["tome"].token_reduction
    assert (tome.method, tome.r, tome.inflection) == ("tome", 13, None)
    prune = configs["prune"].token_reduction
    assert (prune.method, prune.r, prune.layers) == ("prune", 50, [3, 6, 9])
    assert configs["none"].token_reduction.method == "none"
    assert all(not c.token_reduction.trace_source and c.model.pretrained is None for c in configs.values())
    assert PAPER_SETTINGS["ppt"] == {"r": 50, "layers": [3, 6, 9], "threshold": 7e-5, "inflection": None}


def test_variant_overrides_are_parsed_and_validated_like_config_keys():
    cfg = quickstart()
    configs = variant_configs(cfg, ["tome", "ppt"], ["tome.r=8", "ppt.threshold=1e-3", "ppt.layers=[2]"])
    assert configs["tome"].token_reduction.r == 8
    assert configs["ppt"].token_reduction.threshold == 1e-3
    assert configs["ppt"].token_reduction.layers == [2]
    with pytest.raises(BenchmarkError, match=r"for method 'prune', which is not compared; compared: tome, ppt"):
        variant_configs(cfg, ["tome", "ppt"], ["prune.r=8"])
    with pytest.raises(BenchmarkError, match=r"must look like METHOD.KEY=VALUE"):
        variant_configs(cfg, ["tome"], ["tome.r"])
    with pytest.raises(BenchmarkError, match=r"a variant's method is its name"):
        variant_configs(cfg, ["tome"], ["tome.method=ppt"])
    with pytest.raises(BenchmarkError, match=r"variant 'tome'.*token_reduction.r.*-1"):
        variant_configs(cfg, ["tome"], ["tome.r=-1"])
    with pytest.raises(BenchmarkError, match=r"variant 'tome'.*unknown config key 'token_reduction.rr'"):
        variant_configs(cfg, ["tome"], ["tome.rr=3"])


def test_fused_variants_are_their_method_with_the_fused_cpu_kernel():
    cfg = quickstart("token_reduction.fused_cpu_kernel=true")
    configs = variant_configs(cfg, ["ppt", "ppt-fused", "tome-fused"], ["ppt-fused.r=4"])
    settings = {name: c.token_reduction for name, c in configs.items()}
    assert [(s.method, s.fused_cpu_kernel) for s in settings.values()] == [("ppt", False), ("ppt", True),
                                                                          ("tome", True)]
    assert (settings["ppt"].r, settings["ppt-fused"].r, settings["tome-fused"].r) == (9, 4, 13)
    with pytest.raises(ConfigError, match="benchmark.compare.*prune-fused"):
        quickstart("benchmark.compare=[none, prune-fused]")


def test_profiled_step_of_a_fused_block_is_the_fused_kernel(cxx, pynative):
    """The reduction profile times what the variant runs: for a fused block, the
    C++ step, whose outputs equal the ops step's."""
    configs = variant_configs(quickstart(), ["ppt", "ppt-fused"])
    nets = build_variants(configs)
    for name, net in nets.items():
        prepare_for(configs[name], net, "inference")
    t = random_block_inputs(2, 65, nets["ppt"], seed=1)
    args = (t["x"], t["size"], t["source"], t["k"], t["v"], t["probs"])
    steps = {name: ReductionStep(net.blocks[1]) for name, net in nets.items()}
    assert isinstance(steps["ppt-fused"].block.reducer, FusedReducer)
    assert not isinstance(steps["ppt"].block.reducer, FusedReducer)
    for plain, fused in zip(steps["ppt"](*args)[:2], steps["ppt-fused"](*args)[:2]):
        np.testing.assert_allclose(fused.asnumpy(), plain.asnumpy(), rtol=0, atol=1e-5)


def test_variant_that_does_not_fit_the_model_says_how_to_fix_it():
    configs = variant_configs(quickstart("token_reduction.method=tome"), ["ppt"])  # paper layers [3, 6, 9]
    with pytest.raises(BenchmarkError, match=r"variant 'ppt' .* does not fit vit_quickstart: .*layers.*"
                                             r"--variant ppt.KEY=VALUE"):
        build_variants(configs)


def test_variants_share_the_first_variants_weights():
    nets = build_variants(variant_configs(quickstart(), ["none", "tome", "ppt"]))
    first = {p.name: p.asnumpy() for p in nets["none"].get_parameters()}
    for method in ("tome", "ppt"):
        params = {p.name: p.asnumpy() for p in nets[method].get_parameters()}
        assert params.keys() == first.keys()
        assert all(np.array_equal(params[name], first[name]) for name in first)
        assert not nets[method].training
    fresh = build_variants(variant_configs(quickstart(), ["none"]))["none"]
    assert not np.array_equal(fresh.pos_embed.asnumpy(), first["pos_embed"])


# ---- timing and statistics ----

def test_timing_compiles_warms_up_then_interleaves_with_rotating_start():
    log = []
    calls = {name: (lambda name=name: log.append(name)) for name in "abc"}
    timings = time_side_by_side(calls, warmup=2, repeats=4)
    first_and_warmup = ["a", "a", "a", "b", "b", "b", "c", "c", "c"]
    rounds = ["a", "b", "c", "b", "c", "a", "c", "a", "b", "a", "b", "c"]
    assert log == first_and_warmup + rounds
    assert all(len(t.seconds) == 4 and all(s >= 0 for s in t.seconds) for t in timings.values())


class Square(nn.Cell):
    def construct(self, x):
        return x * x


class Double(nn.Cell):
    def construct(self, x):
        return x + x


def test_kernel_profile_interleaves_the_variants_one_call_per_round(graph):
    """Each round profiles one call of every variant, the first one rotating; counts are per call."""
    log = []
    nets = {"a": Square(), "b": Double()}
    x = ms.Tensor(np.ones((4, 4), np.float32))

    def call(name):
        log.append(name)
        return nets[name](x).asnumpy()
    profiles = profile_ops({name: (lambda name=name: call(name)) for name in "ab"}, rounds=3)
    assert log == ["a", "b", "b", "a", "a", "b"]
    for name, kernel in (("a", "Mul"), ("b", "Add")):
        kinds = {k["type"]: k for k in profiles[name]["kernels"]}
        assert profiles[name]["calls"] == 3 and kinds[kernel]["count"] == 1


def test_throughput_summary_by_hand():
    stats = throughput(2, [0.5, 1.0, 2.0, 4.0])  # 4, 2, 1, 0.5 images/s
    assert stats["median"] == pytest.approx(1.5)
    assert stats["q1"] == pytest.approx(0.875)  # linear interpolation between 0.5 and 1 at 3/4
    assert stats["q3"] == pytest.approx(2.5)
    assert (stats["min"], stats["max"]) == (0.5, 4.0)


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
def test_rss_probe_sees_a_touched_allocation():
    with RssProbe() as held:
        block = np.ones(64 * 2 ** 20 // 8)  # 64 MB, every page written
    assert held.peak >= 60 and held.retained >= 60
    del block
    with RssProbe() as transient:
        np.ones(64 * 2 ** 20 // 8).sum()
    assert transient.peak >= 60 and transient.retained < 30


# ---- the tool, once, on vit_quickstart ----


@pytest.fixture(scope="module")
def tool_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("bench") / "bench.json")
    argv = ["--config", QUICKSTART, "--set", "benchmark.batch_sizes=[2]", "--benchmark.compare", "none", "ppt",
            "--benchmark.warmup", "1", "--benchmark.repeats", "3", "--set", "token_reduction.layers=[1]",
            "--profile_reduction", "--profile_ops", "--json", out]
    status = load_tool("benchmark").main(argv)
    with open(out) as handle:
        return status, json.load(handle)


def test_tool_writes_the_documented_fields(tool_run):
    status, report = tool_run
    assert status == 0
    for key in ("model", "img_size", "num_classes", "weights", "mode", "dtype", "warmup", "repeats", "batch_sizes",
                "machine", "memory_note", "variants", "results", "reduction_profile", "ops_profile"):
        assert key in report, key
    assert (report["model"], report["mode"], report["dtype"], report["batch_sizes"]) == \
        ("vit_quickstart", "graph", "float32", [2])
    assert [(r["batch_size"], r["method"]) for r in report["results"]] == [(2, "none"), (2, "ppt")]
    ppt = report["variants"]["ppt"]["token_reduction"]
    assert (ppt["r"], ppt["layers"], ppt["threshold"], ppt["trace_source"]) == (9, [1], 7e-5, False)


def test_tool_names_the_cpu(tool_run):
    with open("/proc/cpuinfo") as cpuinfo:
        names = {line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")}
    assert tool_run[1]["machine"]["cpu"] in names


def test_tool_profiles_every_kernel_of_the_whole_forward(tool_run):
    """vit_quickstart (4 blocks) runs 18 dense layers: patch embedding, qkv, proj, fc1 and fc2 per
    block, head; and 9 LayerNorms and 4 GELUs, as CPU kernels when they can be built, with the
    layout copies (1 image -> patches, 4 x 2 head splits and merges) instead of Transposes, and
    the softmax a kernel (4); qkv's and fc1's biases and the attention scale folded into them."""
    _, report = tool_run
    profiles = {p["method"]: p for p in report["ops_profile"]}
    assert set(profiles) == {"none", "ppt"} and all(p["batch_size"] == 2 for p in profiles.values())
    none = {k["type"]: k for k in profiles["none"]["kernels"]}
    assert none["MatMul"]["count"] == 18
    if native.compiler_available():
        assert none["Custom"]["count"] == 9 + 4 + 1 + 8 + 4
        assert none["BiasAdd"]["count"] == 18 - 4 - 4
        assert not {"Erf", "LayerNorm", "Transpose", "Softmax"} & set(none)
    else:
        assert none["Erf"]["count"] == 4 and none["LayerNorm"]["count"] == 9 and none["Transpose"]["count"] == 9
    for profile in profiles.values():
        kernels = profile["kernels"]
        assert profile["kernel_ms"] == pytest.approx(sum(k["ms"] for k in kernels))
        assert sum(k["share"] for k in kernels) == pytest.approx(1.0)
        assert [k["ms"] for k in kernels] == sorted((k["ms"] for k in kernels), reverse=True)
        assert profile["outside_kernels_ms"] == pytest.approx(profile["wall_ms"] - profile["kernel_ms"])
        assert 0 < profile["kernel_ms"] < profile["wall_ms"]
    ppt = {k["type"] for k in profiles["ppt"]["kernels"]}
    assert {"Sort", "Gather"} & ppt and not {"Sort", "Gather"} & set(none)


def test_tool_macs_and_tokens_match_count_macs_and_the_plan(tool_run):
    _, report = tool_run
    none = count_macs_for("vit_quickstart").total
    ppt = count_macs_for("vit_quickstart", {"method": "ppt", "r": 9, "layers": [1]}).total
    by_method = {r["method"]: r for r in report["results"]}
    assert by_method["none"]["macs_per_image"] == none
    assert by_method["ppt"]["macs_per_image"] == ppt
    assert by_method["ppt"]["macs_ratio_to_none"] == pytest.approx(ppt / none, rel=1e-12)
    assert report["variants"]["ppt"]["macs_ratio_to_none"] == pytest.approx(ppt / none, rel=1e-12)
    # 36 patches + CLS; 9 removed in block 1
    assert report["variants"]["ppt"]["tokens_per_block"] == [37, 28, 28, 28]
    assert report["variants"]["none"]["tokens_per_block"] == [37] * 4


def test_tool_timings_are_positive_and_consistent(tool_run):
    _, report = tool_run
    by_method = {r["method"]: r for r in report["results"]}
    for row in report["results"]:
        rate = row["images_per_s"]
        assert 0 < rate["min"] <= rate["q1"] <= rate["median"] <= rate["q3"] <= rate["max"]
        assert row["compile_s"] > 0
        assert row["ms_per_batch_median"] == pytest.approx(1e3 * 2 / rate["median"], rel=1e-9)
        memory = row["memory_mb"]
        if memory["first_call_peak"] is not None:
            assert memory["first_call_peak"] >= memory["first_call_retained"] - 0.1
            assert memory["timed_calls_peak"] >= 0
    assert by_method["none"]["speedup_vs_none"] == 1.0
    ppt = by_method["ppt"]
    assert len(ppt["seconds"]) == report["repeats"]
    assert ppt["images_per_s"]["median"] == pytest.approx(2 / np.median(ppt["seconds"]))
    per_round = np.asarray(by_method["none"]["seconds"]) / np.asarray(ppt["seconds"])
    assert ppt["speedup_vs_none"] == pytest.approx(np.median(per_round))
    q1, q3 = ppt["speedup_vs_none_q1_q3"]
    assert per_round.min() <= q1 <= ppt["speedup_vs_none"] <= q3 <= per_round.max()


def test_paired_speedup_cancels_a_drift_that_the_ratio_of_medians_keeps():
    # The machine slows down 3x in round 2, between none's call and the variant's; the variant
    # is 2x faster than none otherwise.  The ratio of the medians would say 3 / 0.5 = 6x.
    none = [1.0, 1.0, 3.0, 3.0, 3.0]
    variant = [0.5, 0.5, 0.5, 1.5, 1.5]
    assert np.median(none) / np.median(variant) == 6.0
    assert paired_speedup(none, variant) == (2.0, 2.0, 2.0)
    none = [1.0, 1.2, 3.0, 3.0, 3.0]
    variant = [1.0, 0.5, 1.0, 1.5, 1.5]  # per round: 1.0, 2.4, 3.0, 2.0, 2.0
    assert paired_speedup(none, variant) == (2.0, 2.0, 2.4)


def test_tool_profiles_the_first_reducing_block(tool_run):
    _, report = tool_run
    (row,) = report["reduction_profile"]
    assert (row["method"], row["batch_size"], row["block"], row["tokens_in"], row["tokens_out"]) == \
        ("ppt", 2, 1, 37, 28)
    assert (row["copies"], row["rounds"]) == (6, 30)  # batch <= 8: six chained runs
    for name in ("block_ms", "step_ms", "reduction_share"):
        q1, q3 = row[name + "_q1_q3"]
        assert np.isfinite(row[name]) and q1 <= row[name] <= q3


def test_marginal_per_round_removes_the_call_cost_and_the_control():
    # 4 runs of the part cost 10 (+ call 3 + scaling 4 * 0.5), 1 run 2.5 (+ 3 + 0.5);
    # the control costs 3 + 4 * 0.5 and 3 + 0.5.  One run: (15 - 6 - (5 - 3.5)) / 3 = 2.5.
    seconds = {(True, 4): [15.0, 30.0], (True, 1): [6.0, 12.0], (False, 4): [5.0, 10.0], (False, 1): [3.5, 7.0]}
    assert marginal_per_round(seconds, 4) == pytest.approx([2.5, 5.0])


def test_chained_runs_the_part_once_per_copy_on_the_scaled_inputs(pynative):
    seen = []

    class Recorder(nn.Cell):
        def construct(self, x, label):
            seen.append((x.asnumpy(), label.asnumpy()))
            return (x * 2,)

    x = ms.Tensor(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    label = ms.Tensor(np.array([5, 6], np.int32))
    e = Chained(Recorder(), 3, (True, False))(x, label).asnumpy()
    assert len(seen) == 3
    for scaled_x, passed_label in seen:
        np.testing.assert_allclose(scaled_x, x.asnumpy(), rtol=1e-6)  # scaled by e = 1 + O(1e-9)
        np.testing.assert_array_equal(passed_label, [5, 6])
    assert e.shape == (2, 1)
    seen.clear()
    Chained(None, 3, (True, False))(x, label)
    assert seen == []


def test_tool_reports_a_bad_variant_before_any_work(capsys):
    status = load_tool("benchmark").main(["--config", QUICKSTART, "--variant", "prune.r=3"])
    assert status == 1
    assert "variant override 'prune.r=3' is for method 'prune', which is not compared" in capsys.readouterr().err


# ---- one process per variant ----

def test_merged_reports_take_each_variants_memory_and_a_ratio_of_medians():
    def report(method, seconds, peak):
        return {"batch_sizes": [1, 4], "variants": {method: {"tokens_per_block": [method]}}, "process_peak_rss_mb": peak,
                "results": [{"batch_size": b, "method": method, "seconds": s, "speedup_vs_none": 1.0,
                             "speedup_vs_none_q1_q3": [1.0, 1.0]} for b, s in zip([4, 1], seconds)]}
    merged = merge_reports([report("none", ([4.0, 2.0, 3.0], [1.0]), 900.0),
                            report("ppt", ([1.0, 2.0, 1.5], [0.5]), 700.0)])
    assert merged["isolated"] and merged["process_peak_rss_mb"] == {"none": 900.0, "ppt": 700.0}
    assert list(merged["variants"]) == ["none", "ppt"]
    rows = [(r["batch_size"], r["method"], r["speedup_vs_none"], r["speedup_vs_none_q1_q3"]) for r in merged["results"]]
    assert rows == [(1, "none", 1.0, None), (1, "ppt", 2.0, None), (4, "none", 1.0, None), (4, "ppt", 2.0, None)]


def test_tool_runs_each_variant_in_its_own_process(tmp_path, capsys):
    out = str(tmp_path / "isolated.json")
    status = load_tool("benchmark").main(["--config", QUICKSTART, "--set", "benchmark.batch_sizes=[2]",
                                          "--benchmark.compare", "none", "ppt", "--benchmark.warmup", "0",
                                          "--benchmark.repeats", "2", "--benchmark.isolate", "true", "--json", out])
    printed = capsys.readouterr().out
    assert status == 0
    with open(out) as handle:
        report = json.load(handle)
    assert report["isolated"] and set(report["process_peak_rss_mb"]) == {"none", "ppt"}
    assert all(peak > 100 for peak in report["process_peak_rss_mb"].values())  # MindSpore alone takes more
    assert [(r["batch_size"], r["method"]) for r in report["results"]] == [(2, "none"), (2, "ppt")]
    ppt = report["results"][1]
    assert ppt["speedup_vs_none"] == pytest.approx(np.median(report["results"][0]["seconds"]) /
                                                   np.median(ppt["seconds"]))
    assert "each variant in its own process" in printed


# ---- training mode ----

def test_training_call_runs_a_whole_training_step():
    net = build_variants(variant_configs(quickstart(), ["ppt"]))["ppt"]
    before = {p.name: p.asnumpy().copy() for p in net.trainable_params()}
    call = training_step_call(net, sample_images(2, 24, 0), 10, 0)
    loss = call()
    assert net.training and np.isfinite(loss) and loss.shape == ()
    changed = [name for name, value in before.items()
               if not np.array_equal(value, net.parameters_dict()[name].asnumpy())]
    assert len(changed) == len(before)  # AdamW moves every parameter (first step: by about lr)


def test_tool_times_training_steps(tmp_path):
    out = str(tmp_path / "train.json")
    status = load_tool("benchmark").main(["--config", QUICKSTART, "--set", "benchmark.batch_sizes=[2]",
                                          "--benchmark.compare", "none", "tome", "--benchmark.warmup", "0",
                                          "--benchmark.repeats", "2", "--benchmark.training", "true", "--json", out])
    assert status == 0
    with open(out) as handle:
        report = json.load(handle)
    assert report["task"].startswith("training step")
    assert [(r["method"], len(r["seconds"])) for r in report["results"]] == [("none", 2), ("tome", 2)]


def test_tool_times_the_eval_data_pipeline(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for index in range(7):
        folder = tmp_path / "val" / "ab"[index % 2]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(folder / f"{index}.jpg")
    out = str(tmp_path / "pipeline.json")
    status = load_tool("benchmark").main(["--config", QUICKSTART, "--benchmark.data_pipeline", "true",
                                          "--data.path", str(tmp_path), "--data.batch_size", "3",
                                          "--benchmark.repeats", "2", "--json", out])
    assert status == 0
    with open(out) as handle:
        report = json.load(handle)
    assert (report["images"], report["rounds"], report["batch_size"]) == (7, 2, 3)
    rate = report["images_per_s"]
    assert 0 < rate["min"] <= rate["median"] <= rate["max"]
    assert report["machine"]["cpu"] in capsys.readouterr().out
    status = load_tool("benchmark").main(["--config", QUICKSTART, "--benchmark.data_pipeline", "true",
                                          "--data.path", str(tmp_path), "--data.batch_size", "7"])
    assert status == 1 and "gives a single batch" in capsys.readouterr().err
