"""Config values that only the model can judge: caught when build_model builds the network,
with an error that names the key and what would be allowed."""

import pytest

from ppt_ms.builder import build_model
from ppt_ms.config import load_config
from ppt_ms.models import create_model
from helpers.paths import QUICKSTART


@pytest.mark.parametrize("overrides, fragments", [
    (["token_reduction.r=20"], ["token_reduction.r", "block 2", "remove 20 tokens", "only has 18"]),
    (["token_reduction.method=tome", "token_reduction.r=70"], ["token_reduction.r", "block 0", "at most half of the 36", "(18)"]),
    (["token_reduction.method=prune", "token_reduction.r=[8, 60]"], ["token_reduction.r", "remove 60", "only has 28"]),
    (["token_reduction.layers=[1, 4]"], ["token_reduction.layers", "[4]", "blocks 0..3"]),
    (["model.name=vit_quikstart"], ["unknown model 'vit_quikstart'", "did you mean vit_quickstart",
                                    "deit_small_patch16_224"]),
    (["model.name=deit_tiny_patch16_224", "model.img_size=32"], ["token_reduction.r", "only has 4"]),  # 16 px patches
], ids=["ppt-r", "tome-r", "prune-r-list", "layers", "model-name", "r-for-a-smaller-grid"])
def test_build_model_names_the_key_and_the_limit(overrides, fragments):
    cfg = load_config(QUICKSTART, overrides)
    with pytest.raises(ValueError) as error:
        build_model(cfg)
    for fragment in fragments:
        assert fragment in str(error.value)


@pytest.mark.parametrize("section, fragment", [
    ({"method": "ppt", "r": 8, "layers": [1], "threshold": -1e-5}, "token_reduction.threshold must be >= 0"),
    ({"method": "ppt", "r": 8, "layers": [1], "threshold": None}, "token_reduction.threshold must be >= 0"),
    ({"method": "pool", "r": 8}, "token_reduction.method 'pool'"),
    ({"method": "ppt", "r": 8, "layer": [1]}, "unknown token_reduction key(s) ['layer']"),
])
def test_create_model_without_the_config_layer_still_checks(section, fragment):
    """Library users who skip load_config get the same kind of error from create_model."""
    with pytest.raises(ValueError) as error:
        create_model("vit_quickstart", token_reduction=section)
    assert fragment in str(error.value)


@pytest.mark.parametrize("name", ["vit_base_patch16_clip_224", "vit_small_patch14_reg4_dinov2"])
def test_tome_r_beyond_what_the_input_can_merge_is_the_same_error_on_every_model(name):
    """At 224 px CLIP has 196 patches + CLS, DINOv2-reg 256 patches + 5 prefix tokens: an r above half
    the patches is refused on both (it used to be clamped silently on DINOv2-reg), and half is built."""
    from mindspore.nn.utils import no_init_parameters
    patches = {"vit_base_patch16_clip_224": 196, "vit_small_patch14_reg4_dinov2": 256}[name]
    with no_init_parameters():
        net = create_model(name, img_size=224, token_reduction={"method": "tome", "r": patches // 2})
        assert net.tokens_per_block[0] == net.num_tokens - patches // 2
        with pytest.raises(ValueError, match="at most half of the %d tokens" % patches):
            create_model(name, img_size=224, token_reduction={"method": "tome", "r": patches // 2 + 1})
