"""The eval transform's bicubic resize + center crop in one C++ call that computes only the crop.

MindSpore's Resize(Inter.PILCUBIC) resizes the whole image and the crop then drops about 40 %
of it (500x375 -> 341x256 -> 224x224); its horizontal pass was the largest cost of the eval
pipeline (a third of its CPU time on 500x375 JPEGs). `resize_crop.cc` gives the same uint8
values (Pillow's bicubic weights, horizontal pass first) for the cropped pixels only, in
vectorised loops, and releases the GIL while it runs, so the map's worker threads run in
parallel. It is built with the system C++ compiler on first use (ppt_ms.formulations.native); without a
compiler, transforms.py uses MindSpore's Resize followed by the crop, with the same values.
"""
import ctypes
import functools
import os

import numpy as np

from ..formulations.native import compiled_library

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "resize_crop.cc")


def resized_size(height, width, shorter):
    """(height, width) with the shorter side scaled to `shorter` and the other to
    int(shorter * longer / shorter_in), as MindSpore's and torchvision's Resize(int) do."""
    if height <= width:
        return shorter, int(shorter * width / height)
    return int(shorter * height / width), shorter


def center_offset(size, crop):
    """torchvision's center-crop offset: round((size - crop) / 2), halves to even."""
    return int(round((size - crop) / 2.0))


@functools.lru_cache(maxsize=None)
def resize_crop_library():
    """The C++ entry point (built on first use); RuntimeError when it cannot be built."""
    library = ctypes.CDLL(compiled_library(SOURCE, "the eval transform's bicubic resize"))
    entry = library.ResizeCropBicubic
    entry.argtypes = [ctypes.c_void_p] + [ctypes.c_int] * 8 + [ctypes.c_void_p]
    entry.restype = ctypes.c_int
    return entry


class BicubicResizeCenterCrop:
    """RGB uint8 [H, W, 3] -> [crop, crop, 3]: the center crop of the image bicubic-resized to
    shorter side `shorter`; equal to MindSpore's Resize(shorter, PILCUBIC) then CenterCrop(crop)."""

    def __init__(self, shorter, crop):
        self.shorter, self.crop = shorter, crop

    def __call__(self, image):
        image = np.ascontiguousarray(image, dtype=np.uint8)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f'expected an RGB image [H, W, 3], got shape {image.shape}')
        height, width = image.shape[:2]
        resized = resized_size(height, width, self.shorter)
        crop = np.empty((self.crop, self.crop, 3), np.uint8)
        outside = resize_crop_library()(image.ctypes.data, height, width, resized[0], resized[1],
                             center_offset(resized[0], self.crop), center_offset(resized[1], self.crop),
                             self.crop, self.crop, crop.ctypes.data)
        if outside:
            raise ValueError(f'cannot center-crop {self.crop}x{self.crop} from an image resized to '
                             f'{resized[0]}x{resized[1]}')
        return crop
