"""A tiny ViT for the model and token-reduction tests: built directly from
VisionTransformer, with reference weights (tests/numpy_reference.py) loaded by
timm parameter name, and its logits from the NumPy reference."""
import numpy as np
import mindspore as ms

from helpers import numpy_reference as ref
from ppt_ms.models import VisionTransformer

TINY = dict(img_size=32, patch_size=4, embed_dim=32, depth=4, num_heads=2, num_classes=10)  # 64 patches + prefix
TOLERANCE = 1e-4


def tiny_params(seed: int, distilled: bool = False):
    shapes = ref.timm_vit_shapes(TINY["img_size"], TINY["patch_size"], TINY["embed_dim"], TINY["depth"],
                                 TINY["num_classes"], distilled=distilled)
    return ref.random_state_dict(shapes, seed)


def load_state_dict(net, params):
    """Copy NumPy arrays into the net by timm parameter name; the names must match exactly."""
    named = dict(net.parameters_and_names())
    assert sorted(named) == sorted(params), "parameter names differ from timm's"
    for name, parameter in named.items():
        assert parameter.shape == params[name].shape, name
        parameter.set_data(ms.Tensor(params[name]))


def build_tiny(params, **kwargs) -> VisionTransformer:
    net = VisionTransformer(**TINY, distilled="dist_token" in params, **kwargs)
    load_state_dict(net, params)
    net.set_train(False)
    return net


def reference_logits(params, images, reduction=None):
    return np.stack([t.logits for t in ref.forward(params, images, TINY["num_heads"], reduction)])
