"""Random-access sample source for ``mindspore.dataset.GeneratorDataset``: decode with PIL in Python."""
import re

import numpy as np
from PIL import Image

_DECODE_FAILURE = re.compile(r"cannot decode image '[^'{}]*' \([^\n]*")  # not the f-string in a dumped traceback


def pipeline_error_message(error) -> str:
    """The line that names the bad file, when `error` is MindSpore's wrapper
    around a decode failure inside the pipeline; otherwise str(error)."""
    found = _DECODE_FAILURE.search(str(error))
    return found.group(0) if found else str(error)


def load_rgb(path):
    """Decode any PIL-readable image (grayscale, RGBA, palette, CMYK, ...) to RGB uint8 [H, W, 3]."""
    try:
        with Image.open(path) as image:
            return np.asarray(image if image.mode == 'RGB' else image.convert('RGB'))
    except Exception as error:  # PIL raises many types for corrupt files
        raise RuntimeError(f"cannot decode image '{path}' ({type(error).__name__}: {error}); "
                           "set verify_images: true in the data config to skip unreadable files") from error


class DecodedImages:
    """index -> (RGB uint8 [H, W, 3], int32 label) over a scanned [(path, label)] list; with
    `with_index`, also the sample's index (int32), so that a shard's reader can tell the samples
    MindSpore's sampler repeats to even out the shards."""

    def __init__(self, samples, with_index: bool = False):
        self.samples = list(samples)
        self.with_index = with_index

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        path, label = self.samples[index]
        if self.with_index:
            return load_rgb(path), np.int32(label), np.int32(index)
        return load_rgb(path), np.int32(label)
