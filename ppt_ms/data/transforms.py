"""Per-image transforms of the DeiT recipe, built from mindspore.dataset.vision ops.

Input of every pipeline: an RGB uint8 HWC numpy image of any size (decoded by PIL).
Output: a float32 CHW image normalised with (mean, std); mean/std are on the 0-1 scale,
as in timm.

Interpolation: 'bicubic' uses Inter.PILCUBIC, which reproduces PIL's bicubic resize (what
timm uses) exactly, up- and downscaling (Pillow 13 runs the vertical pass first for some
images, mostly portrait ones, which can move a value by a few levels); the eval transform
computes the same values for the crop only (resize_crop.py). 'bilinear' and 'nearest' use
OpenCV's kernels, which differ from PIL's when downscaling (no antialiasing).
"""
import logging
import math

import mindspore.dataset.vision as vision
import numpy as np

logger = logging.getLogger(__name__)

from ..formulations.native import compiler_available
from .rand_augment import build_rand_augment
from .resize_crop import BicubicResizeCenterCrop, center_offset, resize_crop_library

INTERPOLATIONS = {
    'bicubic': vision.Inter.PILCUBIC,
    'bilinear': vision.Inter.BILINEAR,
    'nearest': vision.Inter.NEAREST,
}
# timm RandomErasing defaults: area fraction in [0.02, 1/3], aspect ratio in [0.3, 1/0.3].
ERASE_AREA = (0.02, 1 / 3)
ERASE_RATIO = (0.3, 1 / 0.3)


def resolve_interpolation(name):
    if name not in INTERPOLATIONS:
        raise ValueError(f"interpolation '{name}' is not supported; use one of {sorted(INTERPOLATIONS)}")
    return INTERPOLATIONS[name]


def check_mean_std(mean, std):
    """Validate per-channel mean/std given on the 0-1 scale (timm convention)."""
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f'mean and std need 3 values (RGB), got mean={list(mean)}, std={list(std)}')
    if any(not 0.0 <= value <= 1.0 for value in mean) or any(not 0.0 < value <= 1.0 for value in std):
        raise ValueError(f'mean and std must be on the 0-1 scale as in timm (e.g. mean [0.485, 0.456, 0.406]), '
                         f'got mean={list(mean)}, std={list(std)}')


def _check_probability(name, value):
    if not 0.0 <= value <= 1.0:
        raise ValueError(f'{name} must be a probability in [0, 1], got {value}')


def _check_range(name, bounds, upper=math.inf):
    if len(bounds) != 2 or not 0.0 < bounds[0] <= bounds[1] <= upper:
        raise ValueError(f'{name} must be [low, high] with 0 < low <= high <= {upper}, got {list(bounds)}')


def eval_resize_size(img_size, crop_pct):
    """Shorter side before the center crop: floor(img_size / crop_pct), as timm."""
    if not 0.0 < crop_pct <= 1.0:
        raise ValueError(f'crop_pct must be in (0, 1], got {crop_pct}')
    return int(math.floor(img_size / crop_pct))


class CenterCrop:
    """Center crop of an HWC array with torchvision's offsets, which timm's eval transform uses.

    Offsets are round((H - size) / 2) with Python's round-half-to-even; MindSpore's CenterCrop
    floors them, which shifts the crop by one pixel whenever H - size is odd, e.g. 343 -> 224.
    The image must be at least size x size (the eval resize guarantees it).
    """

    def __init__(self, size):
        self.size = size

    def __call__(self, image):
        height, width = image.shape[:2]
        if height < self.size or width < self.size:
            raise ValueError(f'cannot center-crop {self.size}x{self.size} from an image of {height}x{width}')
        top, left = center_offset(height, self.size), center_offset(width, self.size)
        return np.ascontiguousarray(image[top:top + self.size, left:left + self.size])


def _to_normalised_chw(mean, std):
    """uint8 HWC -> float32 CHW in [0, 1] -> (x - mean) / std."""
    return [vision.ToTensor(), vision.Normalize(mean=list(mean), std=list(std), is_hwc=False)]


def crop_only_resize(interpolation) -> bool:
    """Whether the eval transform resizes with the crop-only C++ op: bicubic, and the op builds
    (without a compiler, or when compiling fails: a warning, and MindSpore's resize)."""
    if interpolation != 'bicubic':
        return False
    if not compiler_available():
        logger.warning("no C++ compiler to build the crop-only bicubic resize; the eval transform uses "
                       "MindSpore's Resize (same values, slower)")
        return False
    try:
        resize_crop_library()
    except RuntimeError as error:
        logger.warning("the crop-only bicubic resize did not build (%s); the eval transform uses MindSpore's "
                       "Resize (same values, slower)", str(error).splitlines()[0])
        return False
    return True


def build_eval_transforms(img_size, crop_pct, interpolation, mean, std):
    """Resize shorter side to floor(img_size / crop_pct), center crop img_size, normalise -> [3, img_size, img_size].

    Bicubic with a C++ compiler at hand: one op that computes only the crop (same values).
    """
    check_mean_std(mean, std)
    shorter = eval_resize_size(img_size, crop_pct)
    if crop_only_resize(interpolation):
        resize_and_crop = [BicubicResizeCenterCrop(shorter, img_size)]
    else:
        resize_and_crop = [vision.Resize(shorter, resolve_interpolation(interpolation)), CenterCrop(img_size)]
    return resize_and_crop + _to_normalised_chw(mean, std)


def build_train_transforms(img_size, scale, ratio, interpolation, hflip, auto_augment, reprob, mean, std):
    """DeiT fine-tuning augmentation -> [3, img_size, img_size] float32.

    RandomResizedCrop(scale, ratio) -> horizontal flip with probability hflip (0 = off) ->
    RandAugment if auto_augment is a 'rand-...' string (None/'' = off) -> normalise ->
    RandomErasing with probability reprob (0 = off), per-pixel normal noise as timm's 'pixel' mode.
    """
    check_mean_std(mean, std)
    _check_range('scale', scale, upper=1.0)
    _check_range('ratio', ratio)
    _check_probability('hflip', hflip)
    _check_probability('reprob', reprob)
    operations = [vision.RandomResizedCrop(img_size, scale=tuple(scale), ratio=tuple(ratio),
                                           interpolation=resolve_interpolation(interpolation))]
    if hflip > 0:
        operations.append(vision.RandomHorizontalFlip(hflip))
    if auto_augment:
        operations.append(build_rand_augment(auto_augment, mean))
    operations += _to_normalised_chw(mean, std)
    if reprob > 0:
        operations.append(vision.RandomErasing(prob=reprob, scale=ERASE_AREA, ratio=ERASE_RATIO, value='random'))
    return operations
