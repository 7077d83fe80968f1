"""Compare ppt_ms with timm on real-size models of every family: the state dicts and logits written by
scripts/timm_reference/real_size_logits.py (run with torch and timm in a side environment).

    python scripts/check_timm_families.py DIR [--mode graph|pynative]

Each model is built by its timm name at 224 px in graph mode, loads timm's state dict strictly (no
key missing or unexpected; DINOv2's 518 px position embedding is resampled on load), and its logits
are compared with timm's.  Prints one row per model and exits 1 if any differs by more than 1e-4.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import mindspore as ms

from ppt_ms.checkpoint import load_pretrained
from ppt_ms.models import create_model

TOLERANCE = 1e-4


def check(folder: str, name: str, images: np.ndarray):
    start = time.perf_counter()
    net = create_model(name, num_classes=1000, img_size=224)
    report = load_pretrained(net, os.path.join(folder, name + ".safetensors"))
    net.set_train(False)
    logits = net(ms.Tensor(images)).asnumpy()
    expected = np.load(os.path.join(folder, name + ".logits.npy"))
    difference = float(np.abs(logits - expected).max())
    clean = not (report.missing or report.unexpected or report.skipped)
    return difference, clean, report.resized, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--mode", default="graph", choices=("graph", "pynative"))
    args = parser.parse_args(argv)
    ms.set_context(mode=ms.GRAPH_MODE if args.mode == "graph" else ms.PYNATIVE_MODE)
    with open(os.path.join(args.folder, "manifest.json")) as handle:
        manifest = json.load(handle)
    images = np.load(os.path.join(args.folder, "images.npy"))
    failed = False
    print("timm %s, torch %s; ppt_ms in %s mode" % (manifest["timm"], manifest["torch"], args.mode))
    for name in manifest["models"]:
        difference, clean, resized, seconds = check(args.folder, name, images)
        ok = clean and difference <= TOLERANCE
        failed |= not ok
        print("%-38s %s  max |logits - timm| %.2e  keys %s%s  (%.0f s)" % (
            name, "pass" if ok else "FAIL", difference, "all loaded" if clean else "NOT all loaded",
            ", pos_embed %s -> %s" % resized["pos_embed"] if resized else "", seconds), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
