"""Reference data made by mindcv itself: tiny ViTs of mindcv's vit_b_32_224 and vit_b_16_224 shape
(same options, fewer blocks and a narrower width), their checkpoints as mindcv writes them, two
inputs and mindcv's float32 logits; with mindcv 0.3.0 also a training checkpoint as mindcv's
training callback saves it (TrainStep: AdamW moments, EMA copies, loss scale, step counters).

Run in a side environment, never in ppt_ms's (tests only read what it writes):

    python -m venv venv_mindcv && venv_mindcv/bin/pip install mindcv==0.3.0 \
        && venv_mindcv/bin/pip install mindspore==2.10.0 "numpy<2"
    venv_mindcv/bin/python scripts/mindcv_reference/make_cases.py tests/data/mindcv

mindcv 0.2.2 (its older key layout: backbone.transformer.layers.N.M.cell.K..., head.classifier) the
same way with `pip install --no-deps mindcv==0.2.2` and mindspore, numpy<2, pyyaml, tqdm.
"""
import json
import os
import sys

import numpy as np
import mindspore as ms
from mindspore import nn

import mindcv
from mindcv.models import vit

TINY = dict(embed_dim=48, depth=3, num_heads=3, num_classes=10)
CASES = {"vit_b_32_224": dict(patch_size=32, image_size=128), "vit_b_16_224": dict(patch_size=16, image_size=64)}


def build(patch_size, image_size):
    """A mindcv ViT with the options of mindcv's vit_b_*_224 (GELU tanh, nn.LayerNorm eps 1e-7) at TINY size."""
    if hasattr(vit, "VisionTransformer"):  # 0.3.0
        return vit.VisionTransformer(image_size=image_size, patch_size=patch_size, **TINY)
    return vit.vit(image_size=image_size, input_channels=3, patch_size=patch_size, embed_dim=TINY["embed_dim"],
                   num_layers=TINY["depth"], num_heads=TINY["num_heads"], num_classes=TINY["num_classes"],
                   mlp_dim=4 * TINY["embed_dim"])


def randomise(net, rng):
    """Every vector (norms, biases) and the tokens moved off mindcv's init, and the matrices 4x larger
    (std 0.08 instead of 0.02), so that each counts and the MLP's inputs reach where GELU's exact form
    and its tanh approximation differ (a network at init stays where they agree to 1e-6)."""
    for param in net.get_parameters():
        value = param.asnumpy()
        if value.ndim == 1 or "token" in param.name or "pos_embed" in param.name or param.name.endswith(".cls"):
            param.set_data(ms.Tensor(value + 0.1 * rng.standard_normal(value.shape).astype(np.float32)))
        elif value.ndim == 2:
            param.set_data(ms.Tensor(value * 4.0))


def training_checkpoint(net, path, rng, image_size):
    """One AdamW step with EMA through mindcv's TrainStep, saved as mindcv's StateMonitor saves it."""
    from mindcv.optim import create_optimizer
    from mindcv.utils.train_step import TrainStep
    optimizer = create_optimizer(net.trainable_params(), opt="adamw", lr=1e-3, weight_decay=0.05)
    step = TrainStep(nn.WithLossCell(net, nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")),
                     optimizer, scale_sense=ms.Tensor(1024.0), ema=True)
    step.set_train()
    images = ms.Tensor(rng.standard_normal((2, 3, image_size, image_size)).astype(np.float32))
    step(images, ms.Tensor(np.array([1, 2], np.int32)))
    ms.save_checkpoint(step, path)
    return step


def main(out):
    ms.set_context(mode=ms.PYNATIVE_MODE)
    ms.set_seed(0)
    rng = np.random.default_rng(0)
    layout = "v%s" % mindcv.__version__.replace(".", "")
    manifest_path = os.path.join(out, "manifest.json")
    manifest = json.load(open(manifest_path)) if os.path.exists(manifest_path) else {"cases": {}}
    for name, shape in CASES.items():
        case = "%s_%s" % (layout, name)
        folder = os.path.join(out, case)
        os.makedirs(folder, exist_ok=True)
        net = build(**shape)
        randomise(net, rng)
        net.set_train(False)
        images = rng.standard_normal((2, 3, shape["image_size"], shape["image_size"])).astype(np.float32)
        logits = net(ms.Tensor(images)).asnumpy()
        ms.save_checkpoint(net, os.path.join(folder, "weights.ckpt"))
        np.save(os.path.join(folder, "inputs.npy"), images)
        np.save(os.path.join(folder, "logits.npy"), logits)
        entry = {"mindcv": mindcv.__version__, "mindspore": ms.__version__, "model": name,
                 "create_kwargs": dict(TINY, img_size=shape["image_size"]), "files": sorted(os.listdir(folder))}
        if layout == "v030" and name == "vit_b_32_224":
            step = training_checkpoint(net, os.path.join(folder, "train_adamw_ema.ckpt"), rng, shape["image_size"])
            step.network.set_train(False)
            entry["train_logits_after_step"] = "train_logits.npy"
            np.save(os.path.join(folder, "train_logits.npy"), net(ms.Tensor(images)).asnumpy())
            ema = {p.name[len("ema."):]: p.asnumpy() for p in step.ema_weight}
            for param in net.get_parameters():
                param.set_data(ms.Tensor(ema[param.name]))
            np.save(os.path.join(folder, "train_ema_logits.npy"), net(ms.Tensor(images)).asnumpy())
            entry["files"] = sorted(os.listdir(folder))
        manifest["cases"][case] = entry
    with open(manifest_path, "w") as handle:
        json.dump(manifest, handle, indent=1, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1])
