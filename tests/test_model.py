"""ViT/DeiT models: registry, timm parameter layout, and logits against the
independent NumPy reference (tests/numpy_reference.py) in graph and PyNative mode
(the tiny ViT and its reference weights come from tests/tiny_vit.py)."""
import re

import numpy as np
import pytest
import mindspore as ms
from mindspore.nn.utils import no_init_parameters

from helpers import numpy_reference as ref
from ppt_ms.models import create_model, list_models
from helpers.tiny_vit import TINY, TOLERANCE, build_tiny, reference_logits, tiny_params
from ppt_ms.models.layers import DropPath

# --------------------------------------------------------------------------- registry and parameter layout

FAMILY = {"tiny": (192, 3), "small": (384, 6), "base": (768, 12), "large": (1024, 16)}
REQUIRED_NAMES = (
    ["deit_%s_patch16_224" % s for s in ("tiny", "small", "base")]
    + ["deit_%s_distilled_patch16_224" % s for s in ("tiny", "small", "base")]
    + ["deit_base_patch16_384", "vit_quickstart"]
    + ["vit_%s_patch16_%d" % (s, px) for s in ("tiny", "small", "base", "large") for px in (224, 384)])
# Parameter counts timm reports for these models (num_classes 1000).
KNOWN_TIMM_COUNTS = {"deit_tiny_patch16_224": 5_717_416, "deit_small_patch16_224": 22_050_664,
                     "deit_base_patch16_224": 86_567_656, "deit_small_distilled_patch16_224": 22_436_432,
                     "vit_large_patch16_224": 304_326_632}


def architecture(name: str) -> dict:
    """The timm architecture a registered name stands for."""
    if name == "vit_quickstart":
        return dict(img_size=24, patch_size=4, embed_dim=64, depth=4, num_heads=2, num_classes=10, distilled=False)
    match = re.fullmatch(r"(deit|vit)_(tiny|small|base|large)(_distilled)?_patch(\d+)_(\d+)", name)
    assert match, "registered model %r has no recognisable timm name" % name
    _, size, distilled, patch, img = match.groups()
    dim, heads = FAMILY[size]
    return dict(img_size=int(img), patch_size=int(patch), embed_dim=dim, depth=24 if size == "large" else 12,
                num_heads=heads, num_classes=1000, distilled=bool(distilled))


def parameter_count(img_size, patch_size, embed_dim, depth, num_classes, distilled, mlp_ratio=4, **_):
    """Closed-form parameter count of a timm ViT (weights + biases, learned tokens, heads)."""
    c, hidden, prefix = embed_dim, int(embed_dim * mlp_ratio), 2 if distilled else 1
    tokens = (img_size // patch_size) ** 2 + prefix
    per_block = 2 * c + (3 * c * c + 3 * c) + (c * c + c) + 2 * c + (c * hidden + hidden) + (hidden * c + c)
    return ((3 * patch_size ** 2 * c + c) + prefix * c + tokens * c + depth * per_block + 2 * c
            + prefix * (c * num_classes + num_classes))


def test_registry_has_the_documented_models():
    missing = sorted(set(REQUIRED_NAMES) - set(list_models()))
    assert not missing


@pytest.mark.parametrize("name", list_models())
def test_every_model_has_timm_parameters(name):
    """Built without allocating weights; names, shapes and geometry equal timm's."""
    arch = architecture(name)
    with no_init_parameters():
        net = create_model(name)
    expected = ref.timm_vit_shapes(arch["img_size"], arch["patch_size"], arch["embed_dim"], arch["depth"],
                                   arch["num_classes"], distilled=arch["distilled"])
    assert {n: tuple(p.shape) for n, p in net.parameters_and_names()} == expected
    grid = arch["img_size"] // arch["patch_size"]
    assert tuple(net.patch_embed.grid_size) == (grid, grid)
    assert net.num_prefix_tokens == (2 if arch["distilled"] else 1)
    assert net.num_tokens == grid * grid + net.num_prefix_tokens
    assert net.embed_dim == arch["embed_dim"] and len(net.blocks) == arch["depth"]
    assert net.tokens_per_block == [net.num_tokens] * arch["depth"]
    count = sum(int(np.prod(p.shape)) for p in net.get_parameters())
    assert count == parameter_count(**arch)
    if name in KNOWN_TIMM_COUNTS:
        assert count == KNOWN_TIMM_COUNTS[name]


@pytest.mark.parametrize("name", sorted(KNOWN_TIMM_COUNTS))
def test_known_counts_follow_from_the_architecture(name):
    arch = architecture(name)
    shapes = ref.timm_vit_shapes(arch["img_size"], arch["patch_size"], arch["embed_dim"], arch["depth"],
                                 arch["num_classes"], distilled=arch["distilled"])
    assert sum(int(np.prod(s)) for s in shapes.values()) == parameter_count(**arch) == KNOWN_TIMM_COUNTS[name]


def test_quickstart_model_runs(pynative):
    net = create_model("vit_quickstart")
    net.set_train(False)
    logits = net(ms.Tensor(ref.sample_images(3, batch=2, img_size=24))).asnumpy()
    assert logits.shape == (2, 10) and np.isfinite(logits).all()


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model 'deit_tiny_patch16'.*deit_tiny_patch16_224"):
        create_model("deit_tiny_patch16")


def test_unknown_token_reduction_key_is_a_clear_error():
    with pytest.raises(ValueError, match="ratio"):
        create_model("vit_quickstart", token_reduction={"method": "ppt", "ratio": 0.5})


# --------------------------------------------------------------------------- logits against the reference

@pytest.fixture(scope="module")
def images():
    return ref.sample_images(0)


@pytest.fixture(scope="module")
def plain_params():
    return tiny_params(seed=1)


@pytest.fixture(scope="module")
def distilled_params():
    return tiny_params(seed=2, distilled=True)


@pytest.fixture(scope="module")
def plain_net(plain_params):
    return build_tiny(plain_params)


@pytest.fixture(scope="module")
def distilled_net(distilled_params):
    return build_tiny(distilled_params)


def test_plain_logits_match_reference(mode, plain_net, plain_params, images):
    logits = plain_net(ms.Tensor(images)).asnumpy()
    assert logits.shape == (len(images), TINY["num_classes"])
    np.testing.assert_allclose(logits, reference_logits(plain_params, images), rtol=0, atol=TOLERANCE)


def test_distilled_logits_match_reference(mode, distilled_net, distilled_params, images):
    """DeiT distilled: CLS and distillation heads averaged."""
    logits = distilled_net(ms.Tensor(images)).asnumpy()
    np.testing.assert_allclose(logits, reference_logits(distilled_params, images), rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("section", [{"method": "none", "r": 8, "layers": [1]},
                                     {"method": "ppt", "r": 0, "layers": [1, 2]}],
                         ids=["method_none", "ppt_r0"])
def test_no_reduction_is_the_plain_model_bit_for_bit(mode, section, plain_net, plain_params, images):
    net = build_tiny(plain_params, token_reduction=section)
    assert all(p.method == "none" and p.r == 0 for p in net.plan)
    assert net.tokens_per_block == plain_net.tokens_per_block
    assert np.array_equal(net(ms.Tensor(images)).asnumpy(), plain_net(ms.Tensor(images)).asnumpy())


def test_drop_path_drops_whole_samples_only_in_training(pynative):
    ms.set_seed(0)
    cell = DropPath(0.5)
    x = ms.Tensor(np.ones((256, 3, 4), np.float32))
    cell.set_train(True)
    per_sample = cell(x).asnumpy().reshape(256, -1)
    assert set(np.unique(per_sample)) == {0.0, 2.0}  # dropped, or kept and scaled by 1 / keep
    assert (per_sample == per_sample[:, :1]).all()
    assert 0.3 < (per_sample[:, 0] > 0).mean() < 0.7
    cell.set_train(False)
    assert np.array_equal(cell(x).asnumpy(), x.asnumpy())


def test_drop_path_rate_leaves_evaluation_unchanged(pynative, plain_params, images):
    ms.set_seed(0)
    net = build_tiny(plain_params, drop_path_rate=0.5)
    evaluated = net(ms.Tensor(images)).asnumpy()
    np.testing.assert_allclose(evaluated, reference_logits(plain_params, images), rtol=0, atol=TOLERANCE)
    net.set_train(True)
    trained = [net(ms.Tensor(images)).asnumpy() for _ in range(2)]
    assert not np.allclose(trained[0], evaluated) and not np.allclose(trained[0], trained[1])
    net.set_train(False)
    assert np.array_equal(net(ms.Tensor(images)).asnumpy(), evaluated)
