"""Export: a PPT-reduced MindIR file reproduces the live network and the
independent NumPy reference (tests/numpy_reference.py) on a batch that mixes
pooling and pruning, and so does its ONNX file in onnxruntime; a MindIR file
exported with a fixed batch accepts exactly that batch size; AIR fails with a
message naming the reason."""
import os
import re

import numpy as np
import pytest
import mindspore as ms
from mindspore import nn, ops

from helpers import numpy_reference as ref
from ppt_ms.checkpoint import load_pretrained
from ppt_ms.config import make_config
from ppt_ms.export import (ExportError, default_export_path, export_network, run_mindir, run_onnx,
                           verify_export)
from ppt_ms.data import sample_images
from ppt_ms.formulations import prepare
from ppt_ms.models import create_model
from helpers.paths import QUICKSTART, load_tool

# vit_quickstart (patch 4, width 64, 2 heads, 10 classes), made smaller: 16 px, 2 blocks
IMG, PATCH, DIM, HEADS, CLASSES, DEPTH = 16, 4, 64, 2, 10, 2
PPT_LAYER, R = 1, 4
BATCH = 4


pytestmark = pytest.mark.usefixtures("graph_module")


@pytest.fixture(scope="module")
def params():
    return ref.random_state_dict(ref.timm_vit_shapes(IMG, PATCH, DIM, DEPTH, CLASSES), seed=5, qk_gain=3.0)


@pytest.fixture(scope="module")
def images():
    return ref.sample_images(0, batch=BATCH, img_size=IMG)


def reference(params, images, threshold):
    return ref.forward(params, images, HEADS, ref.Reduction("ppt", R, [PPT_LAYER], threshold))


@pytest.fixture(scope="module")
def threshold(params, images):
    """The geometric middle of the widest gap between the images' score
    variances, so that some images pool and the others prune."""
    variances = np.sort([t.variance[PPT_LAYER] for t in reference(params, images, np.inf)])
    ratios = variances[1:] / variances[:-1]
    widest = int(np.argmax(ratios))
    assert ratios[widest] > 1.5, "test images give nearly equal variances %s" % variances
    return float(np.sqrt(variances[widest] * variances[widest + 1]))


@pytest.fixture(scope="module")
def net(params, threshold):
    ppt = {"method": "ppt", "r": R, "layers": [PPT_LAYER], "threshold": threshold}
    model = create_model("vit_quickstart", img_size=IMG, depth=DEPTH, token_reduction=ppt)
    load_pretrained(model, params)
    model.set_train(False)
    return model


@pytest.fixture(scope="module")
def exported(net, images, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("export") / ("ppt_tiny_b%d.mindir" % BATCH))
    assert export_network(net, ms.Tensor(images), path, "MINDIR") == path
    return path


def test_mindir_reproduces_live_network_and_reference_on_a_mixed_batch(exported, net, images, params, threshold):
    traces = reference(params, images, threshold)
    assert {t.pooled[PPT_LAYER] for t in traces} == {True, False}, "the batch must mix pooling and pruning"
    from_file = run_mindir(exported, ms.Tensor(images))
    assert len(from_file) == 1 and from_file[0].shape == (BATCH, CLASSES)
    live = net(ms.Tensor(images)).asnumpy()
    assert np.max(np.abs(from_file[0] - live)) <= 1e-5
    np.testing.assert_allclose(from_file[0], np.stack([t.logits for t in traces]), rtol=0, atol=1e-4)


def test_verify_export_reports_the_difference(exported, net, images):
    result = verify_export(exported, net, ms.Tensor(images), "MINDIR", tolerance=1e-5)
    assert result.max_abs_diff <= 1e-5
    assert result.input_shape == (BATCH, 3, IMG, IMG)
    assert result.output_shapes == ((BATCH, CLASSES),)


class Constant(nn.Cell):
    """Stands in for a live network that the file does not come from."""

    def __init__(self, classes):
        super().__init__()
        self.classes = classes

    def construct(self, images):
        return ops.zeros((images.shape[0], self.classes), ms.float32)


def test_verify_export_rejects_a_file_that_differs(exported, images):
    with pytest.raises(ExportError, match=r"does not reproduce the live network: max \|difference\|"):
        verify_export(exported, Constant(CLASSES), ms.Tensor(images))
    with pytest.raises(ExportError, match=r"outputs of shapes \[\(4, 10\)\], the live network \[\(4, 3\)\]"):
        verify_export(exported, Constant(3), ms.Tensor(images))


def test_mindir_accepts_exactly_its_batch_size(exported, images):
    assert run_mindir(exported, ms.Tensor(images))[0].shape == (BATCH, CLASSES)
    for other in (1, BATCH + 1):
        batch = ms.Tensor(np.zeros((other, 3, IMG, IMG), np.float32))
        with pytest.raises(ExportError, match=r"accepts only the input shape it was exported with"):
            run_mindir(exported, batch)


def test_onnx_file_reproduces_the_reference_and_its_decisions_on_a_mixed_batch(net, images, params, threshold,
                                                                              tmp_path):
    traces = reference(params, images, threshold)
    path = export_network(net, ms.Tensor(images), str(tmp_path / "ppt_tiny.onnx"), "ONNX")
    np.testing.assert_allclose(run_onnx(path, ms.Tensor(images))[0], np.stack([t.logits for t in traces]),
                               rtol=0, atol=1e-4)
    result = verify_export(path, net, ms.Tensor(images), "ONNX")
    pooled = sum(t.pooled[PPT_LAYER] for t in traces)
    assert result.decisions.startswith("PPT decisions identical: %d of %d (block x image) pooled" % (pooled, BATCH))


class Linear(nn.Cell):
    def __init__(self):
        super().__init__()
        self.dense = nn.Dense(4, 3)

    def construct(self, x):
        return self.dense(x)


def test_export_appends_the_format_suffix_when_missing(tmp_path):
    net, x = Linear(), ms.Tensor(np.ones((2, 4), np.float32))
    path = export_network(net, x, str(tmp_path / "linear"), "MINDIR")
    assert path == str(tmp_path / "linear.mindir") and (tmp_path / "linear.mindir").is_file()
    np.testing.assert_allclose(run_mindir(path, x)[0], net(x).asnumpy(), rtol=0, atol=1e-6)


@pytest.mark.skipif(ms.get_context("device_target") == "Ascend", reason="AIR export works on Ascend")
def test_air_export_needs_ascend_and_writes_nothing(tmp_path):
    path = tmp_path / "linear.air"
    with pytest.raises(ExportError, match=r"AIR export needs the Ascend backend.*Export MINDIR instead"):
        export_network(Linear(), ms.Tensor(np.zeros((1, 4), np.float32)), str(path), "AIR")
    assert not path.exists()


def test_default_export_path_names_model_method_and_batch():
    cfg = make_config(None, ["model.name=vit_quickstart", "token_reduction.method=ppt", "export.batch_size=8"])
    assert default_export_path(cfg) == "output/vit_quickstart_ppt_b8.mindir"
    onnx = make_config(cfg.to_dict(), ["export.file_format=ONNX", "token_reduction.method=tome"])
    assert default_export_path(onnx, "out") == "out/vit_quickstart_tome_b8.onnx"


# ---- the tool ----


def test_export_tool_exports_and_verifies(tmp_path, capsys):
    """The tool's wiring, on the unreduced quick-start model (cheapest to compile)."""
    target = tmp_path / "quick"
    status = load_tool("export").main(["--config", QUICKSTART, "--token_reduction.method", "none",
                                 "--export.batch_size", "2", "--export.file", str(target)])
    out = capsys.readouterr().out
    assert status == 0
    assert (tmp_path / "quick.mindir").is_file()
    assert "input  [None, 3, 24, 24] float32 (dynamic batch size; verified at batch 2 and 3)" in out
    assert re.search(r"verified against the live network: max \|difference\| \S+ <= 0.0001", out)


def test_fused_cpu_kernel_is_left_out_of_exported_files(cxx, threshold, images, tmp_path, capsys):
    """A fused network cannot be written (its step is this machine's shared
    library); the tool exports the config's model with the ops step instead,
    and the file gives the fused network's logits."""
    ppt = {"method": "ppt", "r": R, "layers": [PPT_LAYER], "threshold": threshold}
    fused = prepare(create_model("vit_quickstart", img_size=IMG, depth=DEPTH, token_reduction=ppt), "inference",
                    "CPU", fused_step=True)
    with pytest.raises(ExportError, match=r"CPU form \(FusedReducer, InferenceLinear: kernels of this machine"):
        export_network(fused, ms.Tensor(images), str(tmp_path / "fused.mindir"))
    assert not os.listdir(tmp_path)

    ms.set_seed(3)
    quick = create_model("vit_quickstart", token_reduction={"method": "ppt", "r": 8, "layers": [1, 2]})
    quick.set_train(False)
    weights = str(tmp_path / "quick.ckpt")
    ms.save_checkpoint(quick, weights)
    status = load_tool("export").main(["--config", QUICKSTART, "--ckpt", weights, "--export.batch_size", str(BATCH),
                                 "--export.file", str(tmp_path / "ppt"), "--token_reduction.r", "8",
                                 "--token_reduction.fused_cpu_kernel", "true"])
    assert status == 0, capsys.readouterr().err
    batch = sample_images(BATCH, 24, 0)
    np.testing.assert_allclose(run_mindir(str(tmp_path / "ppt.mindir"), batch)[0], quick(batch).asnumpy(),
                               rtol=0, atol=1e-4)


def test_export_tool_fails_with_a_clear_message(capsys):
    status = load_tool("export").main(["--config", QUICKSTART, "--export.file_format", "AIR"])
    assert status == 1
    assert "error: AIR export needs the Ascend backend" in capsys.readouterr().err
