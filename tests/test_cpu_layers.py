"""GELU, LayerNorm and attention's head layout as C++ CPU kernels (formulations/cpu_layers.py,
model.cpu_kernels), forward and backward, against float64 NumPy or NumPy's transpose; the
inference-only kernels with a bias or the softmax folded in (formulations/folded.py) likewise;
inside whole models against the NumPy reference and, in training, against MindSpore's own ops;
and export refusing them."""
import numpy as np
import pytest
import mindspore as ms
from mindspore import nn, ops
from scipy.special import erf

from helpers import numpy_reference as ref
from helpers.tiny_vit import TOLERANCE, build_tiny, reference_logits, tiny_params
from ppt_ms.export import ExportError, export_network
from ppt_ms.formulations import cpu_form_cells, with_cpu_layers
from ppt_ms.formulations.cpu_layers import (bias_gelu_kernel, bias_split_heads_kernel, eps_tensor, gelu_kernel,
                                            head_layout_kernels, layer_norm_kernel, patch_layout_kernel,
                                            softmax_kernel)
from ppt_ms.models import create_model

pytestmark = pytest.mark.usefixtures("cxx")
F32_EPS = 2.0 ** -23


class Kernel(nn.Cell):
    """A Custom primitive as a Cell, so that graph mode compiles it."""

    def __init__(self, kernel):
        super().__init__()
        self.kernel = kernel

    def construct(self, *inputs):
        return self.kernel(*inputs)


def exact_gelu(x):
    x = x.astype(np.float64)
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def exact_layer_norm(x, weight, bias, eps):
    x = x.astype(np.float64)
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + eps) * weight + bias


def test_gelu_is_within_float32_rounding_of_the_exact_function(mode):
    grid = np.linspace(-20.0, 20.0, 400_003, dtype=np.float32)  # large enough for the threaded path
    special = np.array([0.0, -0.0, 1e-30, -1e-30, 1e-6, -1e-6, 88.0, -88.0, 1e4, -1e4, 3e38, -3e38], np.float32)
    x = np.concatenate([grid, special]).reshape(-1, 5)  # 80003 rows: chunks of odd sizes across threads
    y = Kernel(gelu_kernel())(ms.Tensor(x)).asnumpy()
    expected = exact_gelu(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    # a few float32 roundings of the result; MindSpore's own erf formulation is off by as much (4.5e-7)
    assert np.all(np.abs(y - expected) <= 5e-7 + 2 * F32_EPS * np.abs(expected))
    assert np.all(y[x == 0] == 0) and np.all(y[x <= -20] <= 0)


def test_gelu_matches_mindspore_gelu_on_activations(mode):
    x = np.random.default_rng(0).standard_normal((3, 50, 96)).astype(np.float32) * 3
    ours = Kernel(gelu_kernel())(ms.Tensor(x)).asnumpy()
    theirs = nn.GELU(approximate=False)(ms.Tensor(x)).asnumpy()
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)


@pytest.mark.parametrize("shape", [(3, 37), (400, 1536)])
def test_bias_gelu_is_the_gelu_of_the_float32_sum(mode, shape):
    rng = np.random.default_rng(shape[1])
    x = (rng.standard_normal(shape) * 4).astype(np.float32)
    bias = rng.standard_normal(shape[1]).astype(np.float32)
    y = Kernel(bias_gelu_kernel())(ms.Tensor(x), ms.Tensor(bias)).asnumpy()
    expected = exact_gelu(x + bias)  # the sum rounded to float32, as the canonical BiasAdd gives it
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.all(np.abs(y - expected) <= 5e-7 + 2 * F32_EPS * np.abs(expected))


@pytest.mark.parametrize("with_bias", [False, True], ids=["plain", "bias"])
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 6, 197, 197)])
def test_softmax_matches_float64(mode, shape, with_bias):
    rng = np.random.default_rng(shape[-1])
    logits = (rng.standard_normal(shape) * 10).astype(np.float32)
    logits[0, 0, 0] = 3.0  # a row of equal values
    logits[0, 0, 1, ::2] -= 1e4  # values whose exponentials underflow
    inputs = [ms.Tensor(logits)]
    if with_bias:  # log(size) of each key token, one row per image, as proportional attention adds it
        bias = np.log(rng.integers(1, 20, (shape[0], shape[-1]))).astype(np.float32)
        bias[0] = 0.0  # keeps the row of equal values
        logits = logits + bias[:, None, None, :]  # rounded to float32, as MindSpore's Add gives it
        inputs.append(ms.Tensor(bias))
    y = Kernel(softmax_kernel())(*inputs).asnumpy()
    x = logits.astype(np.float64)
    e = np.exp(x - x.max(-1, keepdims=True))
    expected = e / e.sum(-1, keepdims=True)
    assert y.dtype == np.float32 and y.shape == logits.shape
    # float32 rounds x - max by up to |x - max| * 2^-24, which the exponential turns into a relative error
    assert np.all(np.abs(y - expected) <= expected * (1e-6 + F32_EPS * np.abs(x - x.max(-1, keepdims=True))) + 1e-37)
    np.testing.assert_allclose(y[0, 0, 0], 1.0 / shape[-1], rtol=1e-6)


def exact_gelu_derivative(x):
    x = x.astype(np.float64)
    return 0.5 * (1.0 + erf(x / np.sqrt(2.0))) + x * np.exp(-0.5 * x * x) / np.sqrt(2.0 * np.pi)


def test_gelu_backward_is_dy_times_the_exact_derivative(mode):
    x = np.concatenate([np.linspace(-20.0, 20.0, 200_001, dtype=np.float32),
                        np.array([0.0, 1e-30, -1e-6, 88.0, -88.0, 3e38, -3e38], np.float32)])
    dy = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    gelu = Kernel(gelu_kernel())

    def weighted_sum(x):
        return (gelu(x) * ms.Tensor(dy)).sum()

    dx = ms.grad(weighted_sum)(ms.Tensor(x)).asnumpy()
    expected = dy * exact_gelu_derivative(x)
    assert dx.dtype == np.float32 and dx.shape == x.shape
    assert np.all(np.abs(dx - expected) <= 1e-6 * np.abs(dy) + 4 * F32_EPS * np.abs(expected))


def exact_layer_norm_grads(x, weight, dy, eps):
    """float64 (dx, dweight, dbias) of sum(dy * LayerNorm(x)) over the last axis."""
    x, weight, dy = (a.astype(np.float64) for a in (x, weight, dy))
    mean = x.mean(-1, keepdims=True)
    rstd = 1.0 / np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + eps)
    xhat = (x - mean) * rstd
    g = dy * weight
    dx = rstd * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    return dx, (dy * xhat).reshape(-1, x.shape[-1]).sum(0), dy.reshape(-1, x.shape[-1]).sum(0)


@pytest.mark.parametrize("shape", [(5, 8), (2, 7, 37), (16, 197, 384)])
def test_layer_norm_backward_matches_float64(mode, shape):
    rng = np.random.default_rng(sum(shape) + 1)
    x = (rng.standard_normal(shape) * 2 + rng.uniform(-3, 3, shape[:-1] + (1,))).astype(np.float32)
    weight = (1 + 0.3 * rng.standard_normal(shape[-1])).astype(np.float32)
    bias = rng.standard_normal(shape[-1]).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    norm = Kernel(layer_norm_kernel())

    def weighted_sum(x, weight, bias):
        return (norm(x, weight, bias, eps_tensor(1e-6)) * ms.Tensor(dy)).sum()

    grads = ms.grad(weighted_sum, grad_position=(0, 1, 2))(*(ms.Tensor(a) for a in (x, weight, bias)))
    for got, expected in zip(grads, exact_layer_norm_grads(x, weight, dy, 1e-6)):
        got = got.asnumpy()
        assert got.dtype == np.float32 and got.shape == expected.shape
        # float32 rounding of each term, summed over at most 3152 rows (dweight, dbias)
        np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6 * np.abs(expected).max() + 1e-6)


@pytest.mark.parametrize("shape", [(5, 8), (2, 7, 37), (4, 197, 385)])
def test_layer_norm_matches_float64(mode, shape):
    rng = np.random.default_rng(sum(shape))
    # rows far from zero mean and with a small spread: the sums must not lose the spread
    x = (rng.standard_normal(shape) * 0.05 + rng.uniform(-30, 30, shape[:-1] + (1,))).astype(np.float32)
    weight = rng.standard_normal(shape[-1]).astype(np.float32)
    bias = rng.standard_normal(shape[-1]).astype(np.float32)
    y = Kernel(layer_norm_kernel())(*(ms.Tensor(a) for a in (x, weight, bias)), eps_tensor(1e-6)).asnumpy()
    expected = exact_layer_norm(x, weight, bias, 1e-6)
    assert y.shape == x.shape
    # float32 inputs carry ~|x| * 6e-8 of rounding, which a spread of 0.05 turns into ~4e-5 relative
    np.testing.assert_allclose(y, expected, rtol=0, atol=5e-4 * np.abs(expected).max())
    mindspore_norm = ops.LayerNorm(begin_norm_axis=-1, begin_params_axis=-1, epsilon=1e-6)
    theirs = mindspore_norm(ms.Tensor(x), ms.Tensor(weight), ms.Tensor(bias))[0].asnumpy()
    assert np.abs(y - expected).max() <= np.abs(theirs - expected).max() + 1e-6


def numpy_heads(qkv, heads):
    """[B, N, 3C] -> q, k, v [B, H, N, C / H], as timm's attention reshapes and permutes."""
    b, n, c3 = qkv.shape
    return tuple(qkv.reshape(b, n, 3, heads, c3 // (3 * heads)).transpose(2, 0, 3, 1, 4))


@pytest.mark.parametrize("shape, heads", [((2, 5, 12), 2), ((3, 37, 18), 3), ((16, 197, 1152), 6)])
def test_head_layout_is_numpys_transpose_both_ways(mode, shape, heads):
    rng = np.random.default_rng(shape[1])
    qkv = rng.standard_normal(shape).astype(np.float32)
    split_heads, merge_heads = (Kernel(k) for k in head_layout_kernels(heads))
    q, k, v = (t.asnumpy() for t in split_heads(ms.Tensor(qkv)))
    for got, expected in zip((q, k, v), numpy_heads(qkv, heads)):
        assert got.dtype == np.float32 and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
    tokens = merge_heads(ms.Tensor(q)).asnumpy()
    b, h, n, d = q.shape
    np.testing.assert_array_equal(tokens, q.transpose(0, 2, 1, 3).reshape(b, n, h * d))


@pytest.mark.parametrize("shape, heads", [((2, 5, 12), 2), ((1, 197, 1152), 6)])
def test_bias_split_heads_adds_the_bias_and_scales_each_group(mode, shape, heads):
    rng = np.random.default_rng(shape[1] + 1)
    qkv = rng.standard_normal(shape).astype(np.float32)
    bias = rng.standard_normal(shape[-1]).astype(np.float32)
    scales = np.array([0.125, 1.0, 0.7], np.float32)
    q, k, v = (t.asnumpy() for t in Kernel(bias_split_heads_kernel(heads))(
        ms.Tensor(qkv), ms.Tensor(bias), ms.Tensor(scales)))
    for got, expected, scale in zip((q, k, v), numpy_heads(qkv + bias, heads), scales):
        assert got.dtype == np.float32 and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected * scale)  # float32 add, then float32 multiply


def test_head_layout_copies_float16(mode):
    qkv = np.arange(2 * 3 * 24, dtype=np.float16).reshape(2, 3, 24)
    q, k, v = (t.asnumpy() for t in Kernel(head_layout_kernels(4)[0])(ms.Tensor(qkv)))
    for got, expected in zip((q, k, v), numpy_heads(qkv, 4)):
        assert got.dtype == np.float16
        np.testing.assert_array_equal(got, expected)


def test_head_layout_backward_moves_the_gradients_back(mode):
    """d/dqkv of sum(q * wq + k * wk + v * wv) is wq, wk, wv laid back into token rows, and
    d/dheads of sum(merge(heads) * w) is w split into heads."""
    rng = np.random.default_rng(7)
    b, n, h, d = 2, 11, 3, 4
    qkv = rng.standard_normal((b, n, 3 * h * d)).astype(np.float32)
    weights = [rng.standard_normal((b, h, n, d)).astype(np.float32) for _ in range(3)]
    token_weight = rng.standard_normal((b, n, h * d)).astype(np.float32)
    split_heads, merge_heads = (Kernel(k) for k in head_layout_kernels(h))

    def split_sum(x):
        q, k, v = split_heads(x)
        return (q * ms.Tensor(weights[0])).sum() + (k * ms.Tensor(weights[1])).sum() + (v * ms.Tensor(weights[2])).sum()

    def merge_sum(heads):
        return (merge_heads(heads) * ms.Tensor(token_weight)).sum()

    dqkv = ms.grad(split_sum)(ms.Tensor(qkv)).asnumpy()
    expected = np.stack(weights).transpose(1, 3, 0, 2, 4).reshape(b, n, 3 * h * d)
    np.testing.assert_array_equal(dqkv, expected)
    dheads = ms.grad(merge_sum)(ms.Tensor(weights[0])).asnumpy()
    np.testing.assert_array_equal(dheads, token_weight.reshape(b, n, h, d).transpose(0, 2, 1, 3))


@pytest.mark.parametrize("batch, chans, img, patch", [(2, 3, 8, 4), (3, 2, 12, 3), (64, 3, 224, 16)])
def test_patch_layout_is_numpys_reshape_and_transpose_both_ways(mode, batch, chans, img, patch):
    rng = np.random.default_rng(img)
    images = rng.standard_normal((batch, chans, img, img)).astype(np.float32)
    grid = img // patch
    expected = images.reshape(batch, chans, grid, patch, grid, patch).transpose(0, 2, 4, 1, 3, 5)
    expected = expected.reshape(batch * grid * grid, chans * patch * patch)
    to_patches = Kernel(patch_layout_kernel(chans, img, patch))
    np.testing.assert_array_equal(to_patches(ms.Tensor(images)).asnumpy(), expected)
    weight = rng.standard_normal(expected.shape).astype(np.float32)

    def weighted_sum(x):
        return (to_patches(x) * ms.Tensor(weight)).sum()

    dimages = ms.grad(weighted_sum)(ms.Tensor(images)).asnumpy()
    expected_grad = weight.reshape(batch, grid, grid, chans, patch, patch).transpose(0, 3, 1, 4, 2, 5)
    np.testing.assert_array_equal(dimages, expected_grad.reshape(images.shape))


@pytest.mark.parametrize("reduction", [None, ref.Reduction("tome", 6), ref.Reduction("ppt", 20, [1, 2], 1.08e-4)],
                         ids=["none", "tome", "ppt"])
def test_model_with_cpu_kernels_matches_reference(mode, reduction):
    params = tiny_params(1)
    images = ref.sample_images(2, batch=6)
    settings = None
    if reduction is not None:
        settings = {"method": reduction.method, "r": reduction.r, "threshold": reduction.threshold or 0.0}
        if reduction.layers:
            settings["layers"] = list(reduction.layers)
    net = with_cpu_layers(build_tiny(params, token_reduction=settings))
    assert cpu_form_cells(net) == ["CpuAttention", "CpuGELU", "CpuLayerNorm", "CpuPatchEmbed"]
    logits = net(ms.Tensor(images)).asnumpy()
    np.testing.assert_allclose(logits, reference_logits(params, images, reduction), rtol=0, atol=TOLERANCE)


class SquaredLogits(nn.Cell):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def construct(self, x):
        logits = self.net(x)
        return (logits * logits).sum()


@pytest.mark.parametrize("method", ["none", "tome", "ppt"])
def test_training_with_kernels_has_the_gradients_of_mindspore_ops(mode, method):
    """The same weights trained through the kernels and through MindSpore's GELU and LayerNorm:
    equal loss and gradients of every parameter, to float32 rounding."""
    params = tiny_params(2)
    images = ms.Tensor(ref.sample_images(3, batch=4))
    settings = None if method == "none" else {"method": method, "r": 6, "layers": [1, 2], "threshold": 0.0}
    grads = []
    for cpu_kernels in (True, False):
        net = build_tiny(params, token_reduction=settings)
        if cpu_kernels:
            with_cpu_layers(net)
        net.set_train(True)
        value, weight_grads = ms.value_and_grad(SquaredLogits(net), grad_position=None,
                                                weights=net.trainable_params())(images)
        grads.append([value.asnumpy()] + [g.asnumpy() for g in weight_grads])
    assert len(grads[0]) == len(grads[1]) > 10
    for ours, theirs in zip(*grads):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5 * max(1.0, np.abs(theirs).max()))
    assert np.abs(grads[0][1]).max() > 0


def test_export_refuses_a_network_with_cpu_kernels(tmp_path):
    net = with_cpu_layers(create_model("vit_quickstart"))
    with pytest.raises(ExportError, match="CPU form .CpuAttention, CpuGELU, CpuLayerNorm, CpuPatchEmbed"):
        export_network(net, ms.Tensor(np.zeros((1, 3, 24, 24), np.float32)), str(tmp_path / "net.mindir"))
