"""Real-size models of every family, as timm 1.x builds and runs them: random weights (timm's init,
LayerScale gammas set to 0.5 so that the blocks count), their state dicts as safetensors and
their logits on two 224 px images.  DINOv2 (reg4, small) is also stored as its 518 px state dict
and run after timm's own checkpoint filter resampled it to 224 px, as loading DINOv2's weights
at 224 px does.  Run in the side environment with torch and timm (see README):

    PYTHONPATH=../shared/tools/tvstub_timm1 python scripts/timm_reference/real_size_logits.py OUT_DIR

then, in ppt_ms's environment, scripts/check_timm_families.py OUT_DIR compares.
"""
import json
import os
import sys

import numpy as np
import torch
import timm
from safetensors.torch import save_file
from timm.models.vision_transformer import checkpoint_filter_fn

NAMES = ["vit_base_patch16_clip_224", "vit_base_patch16_clip_quickgelu_224", "vit_large_patch14_clip_224",
         "vit_base_patch16_siglip_224", "vit_base_patch16_siglip_gap_224", "vit_small_patch14_dinov2",
         "vit_small_patch14_reg4_dinov2", "vit_base_patch14_reg4_dinov2", "deit3_small_patch16_224",
         "deit3_base_patch16_224"]
RESAMPLED = "vit_small_patch14_reg4_dinov2"


def randomised(model):
    with torch.no_grad():
        for name, tensor in model.named_parameters():
            if name.endswith("gamma"):
                tensor.fill_(0.5)
            elif tensor.ndim == 1 or "token" in name or "pos_embed" in name or "latent" in name:
                tensor.add_(0.1 * torch.randn_like(tensor))
    return model.eval()


def main(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    images = torch.randn(2, 3, 224, 224)
    np.save(os.path.join(out, "images.npy"), images.numpy())
    manifest = {}
    for name in NAMES:
        model = randomised(timm.create_model(name, pretrained=False, num_classes=1000, img_size=224))
        state = model.state_dict()
        if name == RESAMPLED:
            native = randomised(timm.create_model(name, pretrained=False, num_classes=1000))  # 518 px
            state = {k: v.clone() for k, v in native.state_dict().items()}
            model.load_state_dict(checkpoint_filter_fn(state, model))
        with torch.no_grad():
            logits = model(images).numpy()
        save_file({k: v.contiguous() for k, v in state.items()}, os.path.join(out, name + ".safetensors"))
        np.save(os.path.join(out, name + ".logits.npy"), logits)
        manifest[name] = {"pos_embed": list(state["pos_embed"].shape), "keys": len(state)}
        print(name, manifest[name], flush=True)
    with open(os.path.join(out, "manifest.json"), "w") as handle:
        json.dump({"timm": timm.__version__, "torch": torch.__version__, "models": manifest}, handle, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
