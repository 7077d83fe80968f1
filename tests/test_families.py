"""PPT and ToMe on the ViT families beyond DeiT, against the independent NumPy reference
(tests/helpers/numpy_reference.py), on the small timm-made models of tests/data/conformance_families.

The reference is first checked against timm's own logits there (ToMe and plain); then PPT, which
timm and the published code do not define on these models, is checked against it: registers are
never pruned or pooled, the class token's attention scores the patch tokens, LayerScale and the
pre-norm are in the blocks' path.
"""
import json

import numpy as np
import pytest
import mindspore as ms
from safetensors.numpy import load_file

from helpers import numpy_reference as ref
from helpers.paths import DATA
from ppt_ms.checkpoint import load_pretrained
from ppt_ms.export import export_network, run_mindir, run_onnx, verify_export
from ppt_ms.models import TokenTrace, create_model
from ppt_ms.models.layers import QuickGELU

FAMILIES = DATA / "conformance_families"
MANIFEST = json.loads((FAMILIES / "manifest.json").read_text())
# what the reference needs to know beyond the parameters, per family (timm's model_args)
ARCHITECTURE = {"clip": ref.Architecture(act="quick_gelu", norm_eps=1e-5),
                "clip_gelu": ref.Architecture(norm_eps=1e-5),
                "deit3": ref.Architecture(no_embed_class=True),
                "dinov2_reg": ref.Architecture(no_embed_class=True),
                "siglip_gap": ref.Architecture(global_pool="avg")}
PPT_LAYERS = [0, 1, 2]
PPT_R = 2


def family(name):
    spec = MANIFEST["families"][name]
    return spec, load_file(str(FAMILIES / name / "weights.safetensors")), np.load(FAMILIES / spec["inputs"])


@pytest.mark.parametrize("name", sorted(ARCHITECTURE))
def test_reference_reproduces_timm(name):
    """The NumPy reference gives timm's logits and token counts, plain and with ToMe."""
    spec, params, images = family(name)
    for case, reduction in (("plain", ref.Reduction()), ("tome", ref.Reduction("tome", 4))):
        golden = np.load(FAMILIES / name / ("%s.npz" % case))
        traces = ref.forward(params, images, spec["create_kwargs"]["num_heads"], reduction, ARCHITECTURE[name])
        np.testing.assert_allclose([t.logits for t in traces], golden["logits"], rtol=0, atol=1e-6)
        assert traces[0].tokens_per_block == golden["tokens"].tolist()[1:]


def mixing_threshold(spec, params, images, arch):
    """A threshold between the images' score variances in the first PPT block (which no earlier
    decision changes), so that the batch mixes pooled and pruned images there."""
    reduction = ref.Reduction("ppt", PPT_R, PPT_LAYERS, threshold=0.0)
    traces = ref.forward(params, images, spec["create_kwargs"]["num_heads"], reduction, arch)
    variances = sorted(t.variance[PPT_LAYERS[0]] for t in traces)
    middle = len(variances) // 2
    return float(np.sqrt(variances[middle - 1] * variances[middle]))


@pytest.mark.parametrize("name", ["clip", "dinov2_reg", "deit3"])
def test_ppt_equals_the_reference(name, mode):
    """PPT on a CLIP-, a DINOv2-with-registers- and a DeiT III-shaped model, a batch that mixes
    pooling and pruning: logits, each block's choice and variance, token sizes, and the prefix
    tokens (class token, registers) kept in front with size 1."""
    spec, params, images = family(name)
    threshold = mixing_threshold(spec, params, images, ARCHITECTURE[name])
    settings = {"method": "ppt", "r": PPT_R, "layers": PPT_LAYERS, "threshold": threshold}
    net = create_model(spec["model"], **spec["create_kwargs"], token_reduction=settings)
    load_pretrained(net, params)
    net.set_train(False)
    logits, size, _, stats = (t.asnumpy() for t in TokenTrace(net)(ms.Tensor(images)))
    traces = ref.forward(params, images, spec["create_kwargs"]["num_heads"],
                         ref.Reduction("ppt", PPT_R, PPT_LAYERS, threshold), ARCHITECTURE[name])
    pooled = np.array([[t.pooled[layer] for t in traces] for layer in PPT_LAYERS])
    assert pooled[0].any() and not pooled[0].all()
    np.testing.assert_array_equal(stats[PPT_LAYERS, :, 0] > 0.5, pooled)
    np.testing.assert_allclose(stats[PPT_LAYERS, :, 1], [[t.variance[l] for t in traces] for l in PPT_LAYERS],
                               rtol=1e-4)
    np.testing.assert_allclose(logits, [t.logits for t in traces], rtol=0, atol=1e-4)
    np.testing.assert_allclose(size, [t.size for t in traces], atol=1e-6)
    assert (size[:, :spec["num_prefix_tokens"]] == 1).all()
    assert net.tokens_per_block == traces[0].tokens_per_block


@pytest.mark.parametrize("method", ["ppt", "prune"])
def test_significance_without_a_class_token_is_a_clear_error(method):
    """SigLIP has no class token, whose attention PPT's significance is: an error that says so."""
    spec = MANIFEST["families"]["siglip"]
    with pytest.raises(ValueError, match="no class token.*use method tome"):
        create_model(spec["model"], **spec["create_kwargs"], token_reduction={"method": method, "r": 2, "layers": [1]})


# every family exports to ONNX; one model of each head (class token with registers, mean, attention
# pooling) to MindIR too
EXPORT_FORMATS = {name: ("ONNX",) for name in MANIFEST["families"]}
EXPORT_FORMATS.update({name: ("MINDIR", "ONNX") for name in ("dinov2_reg", "siglip_gap", "siglip")})


@pytest.mark.parametrize("name", sorted(EXPORT_FORMATS))
def test_export_with_tome_reproduces_timm(name, tmp_path):
    """Each family with ToMe, exported: the file gives the live network's and timm's logits, under
    the output name logits."""
    import onnx
    spec, params, images = family(name)
    net = create_model(spec["model"], **spec["create_kwargs"], token_reduction=spec["cases"]["tome"])
    load_pretrained(net, params)
    inputs = ms.Tensor(images)
    for file_format in EXPORT_FORMATS[name]:
        run = {"MINDIR": run_mindir, "ONNX": run_onnx}[file_format]
        path = export_network(net, inputs, str(tmp_path / name), file_format)
        result = verify_export(path, net, inputs, file_format)
        assert result.max_abs_diff <= 1e-4 and result.output_shapes == ((len(images), 10),)
        np.testing.assert_allclose(run(path, inputs)[0], np.load(FAMILIES / name / "tome.npz")["logits"], rtol=0,
                                   atol=1e-4)
        if file_format == "ONNX":
            graph = onnx.load(path).graph
            assert [o.name for o in graph.output] == ["logits"] and [i.name for i in graph.input] == ["images"]


def test_export_leaves_the_live_network_as_it_was(tmp_path):
    """CLIP with QuickGELU: after an ONNX export every cell and index function is the one it had, and
    the network still gives timm's logits."""
    spec, params, images = family("clip")
    net = create_model(spec["model"], **spec["create_kwargs"], token_reduction=spec["cases"]["tome"])
    load_pretrained(net, params)
    before = {name: (type(cell), id(cell), getattr(cell, "take", None), getattr(cell, "add", None))
              for name, cell in net.cells_and_names()}
    export_network(net, ms.Tensor(images), str(tmp_path / "clip"), "ONNX")
    after = {name: (type(cell), id(cell), getattr(cell, "take", None), getattr(cell, "add", None))
             for name, cell in net.cells_and_names()}
    assert after == before
    assert any(type_ is QuickGELU for type_, *_ in after.values())
    np.testing.assert_allclose(net(ms.Tensor(images)).asnumpy(), np.load(FAMILIES / "clip" / "tome.npz")["logits"],
                               rtol=0, atol=1e-4)


def test_a_network_without_classifier_exports_embeddings(tmp_path):
    import onnx
    spec, params, images = family("dinov2_reg")
    net = create_model(spec["model"], **{**spec["create_kwargs"], "num_classes": 0})
    load_pretrained(net, params)
    path = export_network(net, ms.Tensor(images[:1]), str(tmp_path / "features"), "ONNX")
    assert [o.name for o in onnx.load(path).graph.output] == ["embeddings"]
