"""ONNX export: every method exports and runs in onnxruntime with the live
network's logits and decisions; the exported GELU is exact GELU; a conformance
case run through onnxruntime matches the published code; dynamic batch sizes
where MindSpore allows them; the benchmark times onnxruntime side by side."""
import json
import math

import numpy as np
import pytest
import mindspore as ms

import onnx
from helpers.conformance_data import MINI
from test_conformance_mini import MANIFEST, check_case
from ppt_ms import export
from ppt_ms.checkpoint import load_pretrained
from ppt_ms.config import ConfigError, make_config
from ppt_ms.data import sample_images
from ppt_ms.export import ExportError, export_network, run_mindir, run_trace_onnx, verify_export
from ppt_ms.models import create_model
from ppt_ms.formulations.onnx import RationalGELU, erf_rational
from helpers.paths import QUICKSTART, load_tool

IMG, DEPTH, BATCH = 64, 2, 3  # 16 patches + CLS; two blocks keep the compiles short


pytestmark = pytest.mark.usefixtures("graph_module")


def test_rational_erf_and_gelu_match_the_exact_functions(pynative):
    x = np.linspace(-8, 8, 40001, dtype=np.float32)
    exact_erf = np.array([math.erf(v) for v in x.astype(np.float64)])
    exact_gelu = 0.5 * x.astype(np.float64) * (1 + np.array([math.erf(v / math.sqrt(2)) for v in x.astype(np.float64)]))
    assert np.abs(erf_rational(ms.Tensor(x)).asnumpy() - exact_erf).max() < 5e-7
    assert np.abs(RationalGELU()(ms.Tensor(x)).asnumpy() - exact_gelu).max() < 1.5e-6


def tiny(method, distilled=False):
    settings = {"none": {}, "tome": {"r": 3}, "ppt": {"r": 4, "layers": [1], "threshold": 1e-4},
                "prune": {"r": 4, "layers": [1]}}[method]
    ms.set_seed(7)
    net = create_model("deit_tiny_distilled_patch16_224" if distilled else "deit_tiny_patch16_224",
                       img_size=IMG, depth=DEPTH, num_classes=5, token_reduction={"method": method, **settings})
    net.set_train(False)
    return net


# PPT without a distillation token: test_export_tool_writes_and_verifies_an_onnx_file and
# test_export.py's mixed batch
@pytest.mark.parametrize("method,distilled", [("none", False), ("tome", False), ("prune", False), ("ppt", True)])
def test_every_method_exports_to_onnx_and_reproduces_the_network(method, distilled, tmp_path):
    net = tiny(method, distilled)
    images = sample_images(BATCH, IMG, 1)
    path = export_network(net, images, str(tmp_path / method), "ONNX")
    result = verify_export(path, net, images, "ONNX")
    assert result.max_abs_diff <= 1e-4 and result.output_shapes == ((BATCH, 5),)
    ops = [node.op_type for node in onnx.load(path).graph.node]
    assert ops.count("Erf") == DEPTH  # every block's GELU runs ONNX's exact Erf
    assert (result.decisions is None) == (method == "none")
    if method == "ppt":
        assert result.decisions.startswith("PPT decisions identical: ")


def test_trace_comparison_fails_on_one_other_decision_or_size():
    """compare_traces, which verify_export applies to the file's trace, on traces made by hand:
    3 blocks (1 and 2 reduce), 2 images."""
    decisions = np.zeros((3, 2, 2), np.float32)
    decisions[1, 0, 0] = decisions[2, 1, 0] = 1  # pooled: image 0 in block 1, image 1 in block 2
    sizes = np.ones((2, 9, 1), np.float32)
    trace = [np.zeros((2, 5)), sizes, np.zeros(1), decisions]
    assert export.compare_traces(trace, [t.copy() for t in trace], [1, 2], "ppt") == \
        "PPT decisions identical: 2 of 4 (block x image) pooled, the rest pruned; token sizes agree (max |difference| 0)"
    flipped = decisions.copy()
    flipped[1, 1, 0] = 1
    with pytest.raises(ExportError, match=r"decides differently .* 1 of 4 PPT pool/prune choices"):
        export.compare_traces(trace, trace[:3] + [flipped], [1, 2], "ppt")
    moved = sizes.copy()
    moved[0, 3, 0] += 1e-3
    with pytest.raises(ExportError, match=r"merges differently .* differ by up to 0.001"):
        export.compare_traces(trace, [trace[0], moved] + trace[2:], [1, 2], "tome")
    outside = decisions.copy()
    outside[0, 0, 0] = 1  # block 0 does not reduce: its decisions are not compared
    assert export.compare_traces(trace, trace[:3] + [outside], [1, 2], "tome").startswith("token sizes agree")


def test_conformance_case_through_onnxruntime_matches_the_published_code():
    """ppt_mixed (DeiT-Tiny, r 50 at [3, 6, 9], both branches taken): logits, every
    pool/prune choice, score variances and token sizes, as the published code gave them."""
    name = "ppt_mixed"
    net = create_model(MANIFEST["model"], token_reduction=MANIFEST["cases"][name]["token_reduction"])
    load_pretrained(net, str(MINI / "weights.safetensors"))
    net.set_train(False)
    images = ms.Tensor(np.load(MINI / "inputs.npy").astype(np.float32))
    logits, size, source, stats = run_trace_onnx(net, images)
    check_case(name, net, logits, size, source, stats)


def test_mindir_has_a_dynamic_batch_and_onnx_says_it_cannot(tmp_path):
    net = tiny("ppt")
    path = export_network(net, sample_images(2, IMG), str(tmp_path / "ppt"), "MINDIR", dynamic_batch=True)
    images = sample_images(4, IMG, 4)  # not the batch size it was exported with
    np.testing.assert_allclose(run_mindir(path, images)[0], net(images).asnumpy(), rtol=0, atol=1e-5)
    with pytest.raises(ExportError, match="ONNX exporter refuses dynamic shapes.*export.dynamic_batch false"):
        export_network(net, sample_images(2, IMG), str(tmp_path / "ppt"), "ONNX", dynamic_batch=True)
    assert not (tmp_path / "ppt.onnx").exists()


def test_export_tool_writes_and_verifies_an_onnx_file(tmp_path, capsys):
    status = load_tool("export").main(["--config", QUICKSTART, "--export.file_format", "ONNX", "--export.batch_size",
                                       "2", "--export.file", str(tmp_path / "quick")])
    out = capsys.readouterr().out
    assert status == 0 and (tmp_path / "quick.onnx").is_file()
    assert "input  [2, 3, 24, 24] float32 (fixed shape" in out
    assert "verified decisions: PPT decisions identical: " in out


def test_benchmark_times_onnxruntime_side_by_side(tmp_path):
    out = str(tmp_path / "ort.json")
    status = load_tool("benchmark").main(["--config", QUICKSTART, "--set", "benchmark.batch_sizes=[2]",
                                          "--benchmark.compare", "none", "ppt", "--benchmark.warmup", "1",
                                          "--benchmark.repeats", "2", "--benchmark.runtime", "onnxruntime",
                                          "--json", out])
    assert status == 0
    with open(out) as handle:
        report = json.load(handle)
    assert report["runtime"]["name"] == "onnxruntime" and "CPUExecutionProvider" in report["runtime"]["providers"]
    assert [(r["method"], len(r["seconds"])) for r in report["results"]] == [("none", 2), ("ppt", 2)]
    assert report["results"][1]["speedup_vs_none"] > 0


def test_onnxruntime_benchmark_refuses_what_a_file_cannot_hold():
    with pytest.raises(ConfigError, match="benchmark.training needs runtime mindspore"):
        make_config(None, ["benchmark.runtime=onnxruntime", "benchmark.training=true"])
    with pytest.raises(ConfigError, match="ppt-fused run the fused CPU kernel"):
        make_config(None, ["benchmark.runtime=onnxruntime", "benchmark.compare=[none, ppt-fused]"])
