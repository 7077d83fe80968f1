"""ViT/DeiT models: registry, timm parameter layout, and logits against the
independent NumPy reference (tests/numpy_reference.py) in graph and PyNative mode
(the tiny ViT and its reference weights come from tests/tiny_vit.py)."""
import json
import os

import numpy as np
import pytest
import mindspore as ms
from mindspore.nn.utils import no_init_parameters

from helpers import numpy_reference as ref
from helpers.paths import DATA
from ppt_ms.models import create_model, list_models
from helpers.tiny_vit import TINY, TOLERANCE, build_tiny, reference_logits, tiny_params
from ppt_ms.models.layers import DropPath

# --------------------------------------------------------------------------- registry and parameter layout

# every parameter name and shape of timm 1.0.31's models (num_classes 1000, timm's default input size),
# written by scripts/timm_reference/state_dict_shapes.py
with open(os.path.join(DATA, "timm_state_dict_shapes.json")) as _file:
    TIMM = json.load(_file)["models"]
REQUIRED_NAMES = sorted(TIMM) + ["vit_quickstart"]


def test_registry_has_the_documented_models():
    missing = sorted(set(REQUIRED_NAMES) - set(list_models()))
    assert not missing


@pytest.mark.parametrize("name", sorted(TIMM))
def test_every_model_has_timm_parameters(name):
    """Built without allocating weights, every model has timm's parameter names and shapes, its
    default input size, and the prefix tokens its parameters say."""
    with no_init_parameters():
        net = create_model(name, num_classes=1000)
    theirs = {key: tuple(shape) for key, shape in TIMM[name]["state_dict"].items()}
    assert {n: tuple(p.shape) for n, p in net.parameters_and_names()} == theirs
    img_size = TIMM[name]["img_size"]
    grid = img_size[0] // net.patch_embed.patch_size
    assert net.patch_embed.img_size == img_size[0] and tuple(net.patch_embed.grid_size) == (grid, grid)
    prefix = sum(theirs.get(key, (0, 0))[1] for key in ("cls_token", "dist_token", "reg_token"))
    assert net.num_prefix_tokens == prefix and net.num_tokens == grid * grid + prefix
    assert net.tokens_per_block == [net.num_tokens] * len(net.blocks)


def test_quickstart_model_has_timm_parameters():
    with no_init_parameters():
        net = create_model("vit_quickstart")
    expected = ref.timm_vit_shapes(24, 4, 64, 4, 10)
    assert {n: tuple(p.shape) for n, p in net.parameters_and_names()} == expected


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


@pytest.mark.parametrize("name", ["vit_small_patch32_224", "vit_base_patch32_224", "vit_base_patch32_384",
                                  "vit_large_patch32_224", "vit_large_patch32_384", "vit_b_32_224", "vit_l_16_384"])
def test_patch32_and_mindcv_models_have_timms_parameters_of_their_shape(name):
    """timm's patch-16 model of the same width and input size, with the 32 px kernel and the shorter
    position embedding a 32 px grid gives (timm 1.0.31's vit_*_patch32_* have exactly these)."""
    size = {"small": "small", "base": "base", "large": "large", "b": "base", "l": "large"}
    parts = name.split("_")
    width = size[parts[1]]
    patch = int(parts[2].replace("patch", ""))
    img = int(parts[3])
    theirs = {key: tuple(shape) for key, shape in TIMM["vit_%s_patch16_%d" % (width, img)]["state_dict"].items()}
    dim = theirs["cls_token"][2]
    theirs["patch_embed.proj.weight"] = (dim, 3, patch, patch)
    theirs["pos_embed"] = (1, (img // patch) ** 2 + 1, dim)
    with no_init_parameters():
        net = create_model(name, num_classes=1000)
    assert {n: tuple(p.shape) for n, p in net.parameters_and_names()} == theirs


@pytest.mark.parametrize("name, source, prefix", [("vit_base_patch16_clip_384", "vit_base_patch16_clip_224", 1),
                                                  ("vit_base_patch16_siglip_384", "vit_base_patch16_siglip_224", 0)])
def test_384_px_family_models_have_timms_parameters(name, source, prefix):
    """timm's 224 px model of the family with the position embedding of a 24 x 24 grid."""
    theirs = {key: tuple(shape) for key, shape in TIMM[source]["state_dict"].items()}
    theirs["pos_embed"] = (1, 24 * 24 + prefix, theirs["pos_embed"][2])
    with no_init_parameters():
        net = create_model(name, num_classes=theirs["head.weight"][0] if "head.weight" in theirs else 0)
    assert {n: tuple(p.shape) for n, p in net.parameters_and_names()} == theirs and net.patch_embed.img_size == 384
