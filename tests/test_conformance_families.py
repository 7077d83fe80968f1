"""ppt_ms against timm 1.x on the ViT families beyond DeiT (CLIP, SigLIP, DINOv2 with
registers, DeiT III), without reduction and with ToMe.

tests/data/conformance_families (a copy of the shared conformance-families set; its README
says what each case computes) holds small random-weight models made by timm with their
logits on six images.  Each model is built by its timm name with timm's keyword arguments
and loads timm's safetensors by name.
"""
import json

import numpy as np
import pytest
import mindspore as ms

from helpers.forms import FORMS, in_form
from helpers.paths import DATA
from ppt_ms.checkpoint import load_pretrained
from ppt_ms.models import create_model

FAMILIES = DATA / "conformance_families"
MANIFEST = json.loads((FAMILIES / "manifest.json").read_text())
CASES = [(family, case) for family, spec in sorted(MANIFEST["families"].items()) for case in sorted(spec["cases"])]
# the other forms on the model with the most that is new here (registers, LayerScale, a patch-only position
# embedding); each graph-mode case compiles anew (CI time)
FORM_CASES = ([("canonical", family, case) for family, case in CASES]
              + [(form, "dinov2_reg", "tome") for form in FORMS if form != "canonical"])


def build(family: str, case: str):
    spec = MANIFEST["families"][family]
    net = create_model(spec["model"], **spec["create_kwargs"], token_reduction=spec["cases"][case])
    report = load_pretrained(net, str(FAMILIES / family / "weights.safetensors"))
    assert not report.missing and not report.unexpected and not report.skipped and not report.resized
    return net


@pytest.mark.parametrize("form, family, case", FORM_CASES, ids=["-".join(c) for c in FORM_CASES])
def test_matches_timm(form, family, case, mode):
    """Logits to 1e-4 and the token count after every block, in graph mode and PyNative."""
    spec = MANIFEST["families"][family]
    golden = np.load(FAMILIES / family / ("%s.npz" % case))
    net = in_form(build(family, case), form)
    assert net.num_prefix_tokens == spec["num_prefix_tokens"] and net.global_pool == spec["global_pool"]
    assert [net.num_tokens] + net.tokens_per_block == golden["tokens"].tolist()
    logits = net(ms.Tensor(np.load(FAMILIES / spec["inputs"]))).asnumpy()
    assert np.abs(logits - golden["logits"]).max() <= MANIFEST["tolerance"]


def test_the_set_is_complete_and_reduction_changes_every_model():
    """All 12 cases are here; ToMe's logits differ from the plain ones in every family, so a model
    that ignored the reduction could not pass both."""
    assert len(CASES) == 12
    for family in MANIFEST["families"]:
        plain, tome = (np.load(FAMILIES / family / ("%s.npz" % case)) for case in ("plain", "tome"))
        assert np.abs(plain["logits"] - tome["logits"]).max() > 10 * MANIFEST["tolerance"]
        assert tome["tokens"][-1] < plain["tokens"][-1]
