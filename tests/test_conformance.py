"""ppt_ms against the published PyTorch PPT / ToMe code (../shared/conformance).

Golden files hold logits, token counts, per-image prune/pool decisions, score
variances, token sizes and source maps produced by the reference on
deit_tiny_patch16_224 with structured random weights.  Images the manifest
flags as fragile (a discrete choice within noise of a tie) are left out of the
per-image comparisons, as the conformance README prescribes.
"""
import json
import os

import numpy as np
import pytest
import mindspore as ms

from helpers.conformance_data import FULL, FULL_PRESENT
from helpers.forms import in_form
from ppt_ms.checkpoint import load_pretrained
from ppt_ms.models import create_model, TokenTrace

CONFORMANCE = str(FULL)
pytestmark = pytest.mark.skipif(not FULL_PRESENT, reason="full conformance directory %s not present" % FULL)

MODEL = "deit_tiny_patch16_224"
TOLERANCE = 1e-4
# (execution mode, form): the canonical network in both modes; the compact set (test_conformance_mini)
# runs every form in both
MODES = {"graph": (ms.GRAPH_MODE, "canonical"), "pynative": (ms.PYNATIVE_MODE, "canonical")}


def _manifest():
    with open(os.path.join(CONFORMANCE, "manifest.json")) as f:
        return json.load(f)


def _token_reduction(case):
    """The ppt_ms token_reduction section equivalent to a manifest case."""
    params = dict(case["params"])
    method = case["method"]
    if method == "none":
        return None
    section = {"method": method, "prop_attn": params.get("prop_attn", True),
               "trace_source": params.get("trace_source", False)}
    if method == "tome":
        r = params["r"]
        if "r_python" in params and params["r_python"].startswith("("):
            section.update(r=int(r[0]), inflection=float(r[1]))
        else:
            section["r"] = r
    else:
        section.update(r=params["r"], layers=params["layers"], threshold=params["threshold"])
    return section


CASES = _manifest()["cases"] if FULL_PRESENT else []


@pytest.fixture(scope="module")
def inputs():
    return np.load(os.path.join(CONFORMANCE, "inputs.npy"))


@pytest.fixture(scope="module")
def image_names():
    return _manifest()["inputs"]["names"]


def _run(case, mode, images, weights):
    execution, form = MODES[mode]
    ms.set_context(mode=execution)
    tr = _token_reduction(case)
    if tr is not None and case["name"].endswith("trace_per_image"):
        tr["trace_source"] = True  # traced as one mixed batch; the reference needed batch 1
    net = create_model(MODEL, token_reduction=tr)
    load_pretrained(net, weights)
    in_form(net, form)
    logits, size, source, stats = TokenTrace(net)(ms.Tensor(images))
    return net, logits.asnumpy(), size.asnumpy(), source.asnumpy(), stats.asnumpy()


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("case", CASES, ids=[c["name"].split("/")[1] for c in CASES])
def test_matches_reference(case, mode, inputs, image_names):
    golden = np.load(os.path.join(CONFORMANCE, case["file"]))
    # half the cases read the torch .pth (restricted unpickler), half the .safetensors
    fmt = ".pth" if CASES.index(case) % 2 == 0 else ".safetensors"
    net, logits, size, source, stats = _run(case, mode, inputs, os.path.join(CONFORMANCE, MODEL + fmt))
    solid = np.array([name not in (case.get("fragile_images") or []) for name in image_names])

    assert net.tokens_per_block == golden["tokens_per_block"].tolist()
    diff = np.abs(logits - golden["logits"]).max(axis=1)
    assert diff[solid].max() <= TOLERANCE, "max |logit diff| per image: %s" % diff

    if "pooled" in golden:
        layers = [p.index for p in net.plan if p.r > 0]
        assert layers == case["params"]["layers"]
        pooled = stats[layers, :, 0] > 0.5
        np.testing.assert_array_equal(pooled[:, solid], golden["pooled"][:, solid])
        np.testing.assert_allclose(stats[layers, :, 1], golden["variance"], rtol=1e-4)
    if "size" in golden:
        np.testing.assert_allclose(size[solid], golden["size"][solid], atol=1e-6)
    if "source" in golden:
        np.testing.assert_array_equal(source[solid], golden["source"][solid])


def test_ddof_probe_needs_unbiased_variance(inputs):
    """The probe's threshold separates ddof=1 from ddof=0 for one image: ours
    must take the reference's (unbiased) side."""
    case = next(c for c in CASES if c["name"].endswith("ppt_ddof_probe"))
    golden = np.load(os.path.join(CONFORMANCE, case["file"]))
    net, _, _, _, stats = _run(case, "graph", inputs, os.path.join(CONFORMANCE, MODEL + ".safetensors"))
    brick = _manifest()["inputs"]["names"].index("brick")
    variance = stats[3, brick, 1]
    population = variance * (196 - 1) / 196
    threshold = case["params"]["threshold"]
    assert population < threshold <= variance
    assert not golden["pooled"][0, brick] and stats[3, brick, 0] == 0.0
