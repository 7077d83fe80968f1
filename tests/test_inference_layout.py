"""The inference layout (formulations/inference_layout.py): linear weights stored [in, out]
compute what timm's [out, in] layers compute, against the NumPy reference, and a
checkpoint in timm's layout refuses to load into a converted network."""
import numpy as np
import pytest
import mindspore as ms
from mindspore import nn

from helpers import numpy_reference as ref
from helpers.tiny_vit import TOLERANCE, build_tiny, reference_logits, tiny_params
from ppt_ms.checkpoint import CheckpointError, load_pretrained
from ppt_ms.formulations import with_inference_layout
from ppt_ms.formulations.inference_layout import InferenceLinear
from ppt_ms.models.layers import PatchProjection

LINEAR_LAYERS = ["patch_embed.proj", "head"] + ["blocks.%d.%s" % (i, layer) for i in range(4)
                                                 for layer in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")]


@pytest.fixture(scope="module")
def params():
    return tiny_params(seed=3)


def test_dense_of_three_axes_matches_numpy(mode):
    rng = np.random.default_rng(0)
    dense = nn.Dense(6, 5)
    weight, bias = rng.standard_normal((5, 6)).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    dense.weight.set_data(ms.Tensor(weight))
    dense.bias.set_data(ms.Tensor(bias))
    x = rng.standard_normal((2, 3, 6)).astype(np.float32)
    linear = InferenceLinear(dense)
    np.testing.assert_allclose(linear(ms.Tensor(x)).asnumpy(), ref.linear(x, weight, bias), rtol=0, atol=1e-5)
    assert (linear.in_channels, linear.out_channels) == (6, 5)


def test_dense_without_bias_matches_numpy(pynative):
    rng = np.random.default_rng(1)
    dense = nn.Dense(4, 3, has_bias=False)
    weight = rng.standard_normal((3, 4)).astype(np.float32)
    dense.weight.set_data(ms.Tensor(weight))
    x = rng.standard_normal((7, 4)).astype(np.float32)
    got = InferenceLinear(dense)(ms.Tensor(x)).asnumpy()
    np.testing.assert_allclose(got, x @ weight.T, rtol=0, atol=1e-5)


def test_patch_projection_matches_numpy(pynative):
    rng = np.random.default_rng(2)
    projection = PatchProjection(3, 8, 2)
    kernel, bias = rng.standard_normal((8, 3, 2, 2)).astype(np.float32), rng.standard_normal(8).astype(np.float32)
    projection.weight.set_data(ms.Tensor(kernel))
    projection.bias.set_data(ms.Tensor(bias))
    patches = rng.standard_normal((5, 12)).astype(np.float32)
    got = InferenceLinear(projection)(ms.Tensor(patches)).asnumpy()
    np.testing.assert_allclose(got, patches @ kernel.reshape(8, 12).T + bias, rtol=0, atol=1e-5)


@pytest.mark.parametrize("reduction", [None, ref.Reduction("tome", 6), ref.Reduction("ppt", 20, [1, 2], 1.08e-4)],
                         ids=["none", "tome", "ppt"])
def test_converted_network_matches_reference(mode, reduction):
    params, images = tiny_params(1), ref.sample_images(2, batch=6)
    settings = None
    if reduction is not None:
        settings = {"method": reduction.method, "r": reduction.r, "threshold": reduction.threshold}
        if reduction.layers:
            settings["layers"] = list(reduction.layers)
    net = with_inference_layout(build_tiny(params, token_reduction=settings))
    logits = net(ms.Tensor(images)).asnumpy()
    np.testing.assert_allclose(logits, reference_logits(params, images, reduction), rtol=0, atol=TOLERANCE)


def test_every_linear_weight_is_renamed_and_transposed(params):
    net = with_inference_layout(build_tiny(params))
    names = dict(net.parameters_and_names())
    assert not [cell for _, cell in net.cells_and_names() if isinstance(cell, (nn.Dense, PatchProjection))]
    for layer in LINEAR_LAYERS:
        timm_weight = params[layer + ".weight"]
        assert layer + ".weight" not in names
        np.testing.assert_array_equal(names[layer + ".weight_in_out"].asnumpy(),
                                      timm_weight.reshape(timm_weight.shape[0], -1).T)
        np.testing.assert_array_equal(names[layer + ".bias"].asnumpy(), params[layer + ".bias"])
    assert len(names) == len(params)


def test_timm_checkpoint_does_not_load_into_converted_network(params):
    """Even the square proj weights cannot slip in untransposed: every renamed key is reported."""
    net = with_inference_layout(build_tiny(params))
    with pytest.raises(CheckpointError) as error:
        load_pretrained(net, params)
    problems = "\n".join(error.value.details) + "\n"
    for layer in LINEAR_LAYERS:
        assert "missing in checkpoint: %s.weight_in_out\n" % layer in problems
        assert "unexpected in checkpoint: %s.weight " % layer in problems
