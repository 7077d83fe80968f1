"""ppt_ms against the published PyTorch PPT / ToMe code, on the compact set every clone has.

tests/data/conformance_mini holds what the published code computed on DeiT-Tiny with
structured weights (stored as float16 exactly: the reference ran on the rounded values)
for 8 images: logits, token counts, PPT's prune/pool choices and score variances, token
sizes and source maps (see its README). The weights go through `load_pretrained`, so the
float16 safetensors path is part of what is checked.
"""
import json

import numpy as np
import pytest
import mindspore as ms

from helpers.conformance_data import MINI
from helpers.forms import FORMS, in_form
from ppt_ms.checkpoint import load_pretrained
from ppt_ms.models import create_model, TokenTrace

TOLERANCE = 1e-4
MANIFEST = json.loads((MINI / "manifest.json").read_text())
CASES = sorted(MANIFEST["cases"])


@pytest.fixture(scope="module")
def images():
    return ms.Tensor(np.load(MINI / "inputs.npy").astype(np.float32))


def run_case(name, images, form="canonical"):
    """-> (net, logits, size, source, stats) of TokenTrace on the case's settings, the network in `form`."""
    net = create_model(MANIFEST["model"], token_reduction=MANIFEST["cases"][name]["token_reduction"])
    report = load_pretrained(net, str(MINI / "weights.safetensors"))
    assert not report.missing and not report.skipped
    in_form(net, form)
    logits, size, source, stats = TokenTrace(net)(images)
    return net, logits.asnumpy(), size.asnumpy(), source.asnumpy(), stats.asnumpy()


def test_weights_are_float16_and_load_as_float32():
    from safetensors.numpy import load_file
    stored = load_file(str(MINI / "weights.safetensors"))
    assert {a.dtype for a in stored.values()} == {np.dtype(np.float16)}
    net = create_model(MANIFEST["model"])
    load_pretrained(net, str(MINI / "weights.safetensors"))
    loaded = net.parameters_dict()["blocks.5.mlp.fc1.weight"]
    assert loaded.dtype == ms.float32
    assert np.array_equal(loaded.asnumpy(), stored["blocks.5.mlp.fc1.weight"].astype(np.float32))


# The forms that change the reduction step (the fused step in cpu-inference) run every case; the ones
# that change only the layers (cpu-training) or the index functions and GELU (onnx) run the cases that
# merge and prune in one batch and trace merged sources (CI time: each graph-mode case compiles anew).
FORM_CASES = [(form, name) for form in FORMS for name in CASES
              if form in ("canonical", "cpu-inference") or name in ("ppt_mixed", "tome_r13")]


@pytest.mark.parametrize("form, name", FORM_CASES, ids=["%s-%s" % pair for pair in FORM_CASES])
def test_matches_published_code(name, form, mode, images):
    """Every form (ppt_ms.formulations) in graph mode and PyNative gives the published results."""
    check_case(name, *run_case(name, images, form))


def check_case(name, net, logits, size, source, stats):
    case = MANIFEST["cases"][name]
    golden = np.load(MINI / (name + ".npz"))

    assert net.tokens_per_block == golden["tokens_per_block"].tolist() == case["tokens_per_block"]
    assert np.abs(logits - golden["logits"]).max() <= TOLERANCE
    if "pooled" in golden:
        layers = case["token_reduction"]["layers"]
        assert [p.index for p in net.plan if p.r > 0] == layers
        np.testing.assert_array_equal(stats[layers, :, 0] > 0.5, golden["pooled"])
        np.testing.assert_allclose(stats[layers, :, 1], golden["variance"], rtol=1e-4)
        pooled_names = {str(layer): [MANIFEST["images"][i] for i in np.flatnonzero(row)]
                        for layer, row in zip(layers, golden["pooled"])}
        assert pooled_names == case["pooled_per_layer"]
    if "size" in golden:
        np.testing.assert_allclose(size, golden["size"], atol=1e-6)
    if "source" in golden:
        np.testing.assert_array_equal(source, golden["source"])


def test_every_case_and_check_is_covered():
    """The set exercises both PPT branches, ToMe's sizes and source maps for both methods."""
    assert len(CASES) == 7
    kinds = {name: set(np.load(MINI / (name + ".npz")).files) for name in CASES}
    assert {"pooled", "variance"} <= kinds["ppt_mixed"]
    mixed = np.load(MINI / "ppt_mixed.npz")["pooled"]
    assert mixed.any(axis=1).all() and (~mixed).any(axis=1).all()
    assert {"size", "source"} <= kinds["tome_r13"]
    assert "source" in kinds["ppt_prune_all"] and "source" in kinds["ppt_pool_all"]
