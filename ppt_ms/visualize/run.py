"""From image files to token-map pictures: preprocess, trace, draw, save."""
import math
import os

import numpy as np
import mindspore as ms
from PIL import Image

from ..builder import build_model
from ..config import make_config
from ..data import build_eval_transforms
from .render import compose, input_panel, token_panel
from .trace import BlockSources, patch_groups

MIN_CELL_PX = 16  # small patches (e.g. 4 px) are enlarged so the map stays readable
MIN_PANEL_PX = 150  # and small images too, so a panel is as wide as its caption
ACTIONS = {"tome": "merged", "prune": "pruned"}


def load_image(path):
    """RGB uint8 [H, W, 3] of an image file; any problem is an error naming the file."""
    try:
        with Image.open(path) as image:
            return np.array(image.convert("RGB"), dtype=np.uint8)
    except Exception as error:  # PIL raises many types for missing, truncated or foreign files
        raise ValueError("cannot read image '%s': %s: %s" % (path, type(error).__name__, error)) from None


def prepare(paths, data_cfg, img_size):
    """Image files -> (model input float32 [B, 3, S, S], what the model sees as
    uint8 [B, S, S, 3]), with the evaluation transform of the data config."""
    transforms = build_eval_transforms(img_size, data_cfg["crop_pct"], data_cfg["interpolation"],
                                       data_cfg["mean"], data_cfg["std"])
    batch = []
    for path in paths:
        image = load_image(path)
        for transform in transforms:
            image = transform(image)
        batch.append(np.asarray(image, dtype=np.float32))
    batch = np.stack(batch)
    mean = np.asarray(data_cfg["mean"], np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(data_cfg["std"], np.float32).reshape(1, 3, 1, 1)
    seen = np.clip(np.rint((batch * std + mean) * 255.0), 0, 255).astype(np.uint8)
    return batch, seen.transpose(0, 2, 3, 1)


def traced_config(cfg):
    """`cfg` with source tracing switched on; a config without reduction is an error."""
    tr = cfg["token_reduction"]
    if tr["method"] == "none":
        raise ValueError("token_reduction.method is 'none': there is no token reduction to visualise; "
                         "use ppt, tome or prune (e.g. --token_reduction.method ppt)")
    return make_config(cfg.to_dict(), ["token_reduction.trace_source=true"])


def describe(cfg):
    """One line naming the model and its reduction settings."""
    tr = cfg["token_reduction"]
    parts = ["%s, %s r=%s" % (cfg["model"]["name"], tr["method"], tr["r"])]
    if tr["method"] in ("ppt", "prune"):
        parts.append("layers %s" % tr["layers"])
    if tr["method"] == "ppt":
        parts.append("threshold %g" % tr["threshold"])
    if tr["method"] == "tome" and tr["inflection"] is not None:
        parts.append("inflection %g" % tr["inflection"])
    return ", ".join(parts)


def block_caption(block, pooled):
    """Caption lines of the panel after a reducing BlockPlan."""
    action = ("pooled" if pooled else "pruned") if block.method == "ppt" else ACTIONS[block.method]
    return ["after block %d" % block.index, "%d tokens (%s %d)" % (block.tokens_out, action, block.r)]


def image_figure(net, seen, sources, stats, fill, title, columns):
    """The figure of one image: seen [S, S, 3] uint8, sources[i] its [N_i, N0]
    source map after block i, stats [depth, 2]."""
    patch = net.patch_embed.patch_size
    gh, gw = net.patch_embed.grid_size
    scale = max(1, int(math.ceil(MIN_CELL_PX / patch)), int(math.ceil(MIN_PANEL_PX / (gw * patch))))
    panels = [input_panel(seen, scale)]
    captions = [["input", "%dx%d px, %d patches" % (seen.shape[1], seen.shape[0], gh * gw)]]
    for block in net.plan:
        if block.r > 0:
            labels = patch_groups(sources[block.index], net.num_prefix_tokens, (gh, gw))
            panels.append(token_panel(seen, labels, patch, scale, fill))
            captions.append(block_caption(block, stats[block.index, 0] > 0.5))
    return compose(panels, captions, title, columns)


def output_names(paths):
    """<stem>_tokens.png per image, with _2, _3 ... added when stems repeat."""
    names, used = [], set()
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        name, k = stem + "_tokens.png", 1
        while name in used:
            k += 1
            name = "%s_%d_tokens.png" % (stem, k)
        used.add(name)
        names.append(name)
    return names


def visualize(cfg, image_paths, out_dir, weights=None, fill="mean", title="", columns=7):
    """Write one token-map PNG per image into `out_dir`; returns their paths.

    All images go through the network as one batch (each image takes its own
    PPT branch).  `title` is added under the generated description line."""
    if not image_paths:
        raise ValueError("no images given: pass at least one --image")
    cfg = traced_config(cfg)
    m = cfg["model"]
    batch, seen = prepare(image_paths, cfg["data"], m["img_size"])
    net, _ = build_model(cfg, weights, purpose="inference")  # swaps cells in place: trace `net` itself
    net.set_train(False)
    sources, stats = BlockSources(net)(ms.Tensor(batch))
    sources = [s.asnumpy() for s in sources]
    stats = stats.asnumpy()
    heading = describe(cfg) + ("\n" + title if title else "")
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for b, name in enumerate(output_names(image_paths)):
        figure = image_figure(net, seen[b], [s[b] for s in sources], stats[:, b], fill, heading, columns)
        path = os.path.join(out_dir, name)
        figure.save(path, optimize=True)
        written.append(path)
    return written
