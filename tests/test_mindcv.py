"""mindcv's ViTs: checkpoints that mindcv 0.3.0 and 0.2.2 wrote themselves (tests/data/mindcv, made by
scripts/mindcv_reference/make_cases.py) load by mindcv's model names and give mindcv's logits; ToMe and
PPT on them equal the NumPy reference with mindcv's GELU and LayerNorm eps; mindcv's training
checkpoint (AdamW, EMA, loss scale) loads as weights, its EMA copy on request."""
import json
import logging

import numpy as np
import pytest
import mindspore as ms

from helpers import numpy_reference as ref
from helpers.forms import in_form
from helpers.paths import DATA, load_tool
from ppt_ms.checkpoint import load_pretrained, read_state_dict
from ppt_ms.checkpoint.layouts import to_timm_names
from ppt_ms.models import create_model

MINDCV = DATA / "mindcv"
CASES = json.loads((MINDCV / "manifest.json").read_text())["cases"]
MINDCV_ARCH = ref.Architecture(act="gelu_tanh", norm_eps=1e-7)
REDUCTIONS = {"tome": (dict(method="tome", r=3), ref.Reduction("tome", 3)),
              "ppt": (dict(method="ppt", r=4, layers=[1, 2], threshold=7e-5), ref.Reduction("ppt", 4, (1, 2), 7e-5))}


def mindcv_net(case, token_reduction=None, **extra):
    spec = CASES[case]
    return create_model(spec["model"], **spec["create_kwargs"], token_reduction=token_reduction, **extra)


def run(net, case):
    net.set_train(False)
    return net(ms.Tensor(np.load(MINDCV / case / "inputs.npy"))).asnumpy()


@pytest.mark.parametrize("case", sorted(CASES))
def test_mindcv_checkpoints_give_mindcvs_logits(case, mode):
    net = mindcv_net(case)
    report = load_pretrained(net, str(MINDCV / case / "weights.ckpt"))
    assert report.layout == "mindcv %s" % CASES[case]["mindcv"][:3] and not report.missing
    np.testing.assert_allclose(run(net, case), np.load(MINDCV / case / "logits.npy"), rtol=0, atol=1e-5)


@pytest.mark.parametrize("method", sorted(REDUCTIONS))
@pytest.mark.parametrize("case", ["v030_vit_b_32_224", "v022_vit_b_16_224"])
def test_tome_and_ppt_on_mindcv_weights_equal_the_reference(case, method, mode):
    """The reference reads the weights renamed independently of ppt_ms (a NumPy rename of the keys)."""
    token_reduction, reduction = REDUCTIONS[method]
    net = mindcv_net(case, token_reduction)
    load_pretrained(net, str(MINDCV / case / "weights.ckpt"))
    params = to_timm_names(read_state_dict(MINDCV / case / "weights.ckpt"))[0]
    traces = ref.forward(params, np.load(MINDCV / case / "inputs.npy"), CASES[case]["create_kwargs"]["num_heads"],
                         reduction, MINDCV_ARCH)
    assert net.tokens_per_block == traces[0].tokens_per_block and net.tokens_per_block[-1] < net.num_tokens
    np.testing.assert_allclose(run(net, case), [t.logits for t in traces], rtol=0, atol=1e-4)


@pytest.mark.parametrize("form", ["cpu-inference", "onnx"])
def test_mindcv_model_in_the_other_forms(form, pynative):
    """The CPU kernels and the ONNX form keep mindcv's tanh GELU and eps 1e-7."""
    case = "v030_vit_b_16_224"
    net = mindcv_net(case, REDUCTIONS["tome"][0])
    load_pretrained(net, str(MINDCV / case / "weights.ckpt"))
    expected = run(net, case)
    np.testing.assert_allclose(run(in_form(net, form), case), expected, rtol=0, atol=1e-5)


def test_a_mindcv_layout_in_a_network_of_other_arithmetic_is_warned(caplog):
    """timm's vit_base_patch32_224 (exact GELU, eps 1e-6) is mindcv's shape: the weights load, with a warning."""
    case = "v030_vit_b_32_224"
    net = create_model("vit_base_patch32_224", **CASES[case]["create_kwargs"])
    with caplog.at_level(logging.WARNING):
        load_pretrained(net, str(MINDCV / case / "weights.ckpt"))
    assert "build mindcv's model name" in caplog.text and "gelu_tanh" in caplog.text
    difference = np.abs(run(net, case) - np.load(MINDCV / case / "logits.npy")).max()
    assert difference > 1e-6  # what the warning is about (5.8e-4 at real size, says the issue)


def test_mindcv_training_checkpoint_loads_live_or_ema_weights(caplog, pynative):
    case = "v030_vit_b_32_224"
    path = str(MINDCV / case / "train_adamw_ema.ckpt")
    net = mindcv_net(case)
    with caplog.at_level(logging.WARNING):
        report = load_pretrained(net, path)
    note = report.training_state
    assert note in caplog.text and "\n" not in note
    for part in ("optimizer moments (88 tensors: adam_m.*, adam_v.*)", "EMA copy (44 tensors: ema.*)",
                 "took the live weights", "use_ema", "global_step", "learning_rate", "beta1_power", "scale_sense"):
        assert part in note
    np.testing.assert_allclose(run(net, case), np.load(MINDCV / case / "train_logits.npy"), rtol=0, atol=1e-5)
    report = load_pretrained(net, path, use_ema=True)
    assert "took the EMA weights" in report.training_state
    np.testing.assert_allclose(run(net, case), np.load(MINDCV / case / "train_ema_logits.npy"), rtol=0, atol=1e-5)


CONVERSIONS = [(case, "weights.ckpt", "logits.npy", True) for case in sorted(CASES)] + [
    ("v030_vit_b_32_224", "train_adamw_ema.ckpt", "train_logits.npy", True),
    ("v030_vit_b_32_224", "train_adamw_ema.ckpt", "train_logits.npy", False)]


@pytest.mark.parametrize("case, source, logits, with_model", CONVERSIONS)
def test_convert_writes_timm_named_weights_of_mindcv_checkpoints(case, source, logits, with_model, tmp_path, capsys,
                                                                 monkeypatch, pynative):
    out = tmp_path / "converted.ckpt"
    argv = ["--src", str(MINDCV / case / source), "--dst", str(out)]
    if with_model:  # convert builds registered models: the tiny one is registered for this test only
        from ppt_ms.models import registry
        monkeypatch.setitem(registry._MODELS, "tiny_" + case, lambda **kw: mindcv_net(case, **kw))
        argv += ["--model", "tiny_" + case]
    assert load_tool("convert").main(argv) == 0
    printed = capsys.readouterr().out
    assert "read as mindcv %s's key layout" % CASES[case]["mindcv"][:3] in printed
    assert ("set aside training state" in printed) == source.startswith("train")
    weights = read_state_dict(out)
    assert not any(k.startswith(("adam_", "ema.", "backbone.")) or "gamma" in k for k in weights)
    assert "global_step" not in weights and "blocks.0.norm1.weight" in weights
    net = mindcv_net(case)
    load_pretrained(net, str(out))
    np.testing.assert_allclose(run(net, case), np.load(MINDCV / case / logits), rtol=0, atol=1e-5)


def test_mindcv_model_with_tome_exports_to_onnx(tmp_path, pynative):
    """GELU's tanh approximation exports as ONNX's own ops; the file equals the live network."""
    from ppt_ms.export import export_network, verify_export
    case = "v030_vit_b_16_224"
    net = mindcv_net(case, REDUCTIONS["tome"][0])
    load_pretrained(net, str(MINDCV / case / "weights.ckpt"))
    images = ms.Tensor(np.load(MINDCV / case / "inputs.npy"))
    result = verify_export(export_network(net, images, str(tmp_path / "mindcv"), "ONNX"), net, images, "ONNX")
    assert result.max_abs_diff <= 1e-5
