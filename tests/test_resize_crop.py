"""The crop-only bicubic resize (ppt_ms/data/resize_crop.cc) against MindSpore's Resize(PILCUBIC) + crop."""
import logging
import mindspore.dataset.vision as vision
import numpy as np
import pytest

from ppt_ms.data import transforms
from ppt_ms.data.resize_crop import BicubicResizeCenterCrop


def resize_then_crop(image, shorter, crop):
    """MindSpore's whole-image PILCUBIC resize, then the crop with torchvision's offsets."""
    resized = vision.Resize(shorter, vision.Inter.PILCUBIC)(image)
    top, left = [int(round((size - crop) / 2.0)) for size in resized.shape[:2]]
    return resized[top:top + crop, left:left + crop]


@pytest.mark.parametrize('height, width, shorter, crop', [
    (375, 500, 256, 224),   # ImageNet-like landscape
    (500, 333, 256, 224),   # portrait
    (343, 343, 256, 224),   # square
    (40, 52, 18, 16),       # the test suite's small images
    (8, 8, 18, 16),         # upscaling both ways
    (20, 600, 24, 24),      # upscale one axis, shrink the other
    (1000, 30, 12, 12),     # crop = the whole shorter side
    (257, 256, 256, 256),   # one side unchanged
    (1, 7, 4, 4),           # one-pixel rows and columns
    (7, 1, 4, 4),
])
def test_equals_mindspore_resize_then_crop(cxx, height, width, shorter, crop):
    image = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    np.testing.assert_array_equal(BicubicResizeCenterCrop(shorter, crop)(image), resize_then_crop(image, shorter, crop))


def test_random_shapes_equal_mindspore(cxx):
    rng = np.random.default_rng(0)
    for _ in range(40):
        height, width = (int(v) for v in rng.integers(4, 400, 2))
        shorter = int(rng.integers(2, 300))
        crop = int(rng.integers(1, shorter + 1))
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        np.testing.assert_array_equal(BicubicResizeCenterCrop(shorter, crop)(image),
                                      resize_then_crop(image, shorter, crop), err_msg=f'{height}x{width} -> {shorter}')


def test_bad_inputs_are_named(cxx):
    with pytest.raises(ValueError, match=r'cannot center-crop 32x32 from an image resized to 24x32'):
        BicubicResizeCenterCrop(24, 32)(np.zeros((30, 40, 3), np.uint8))
    with pytest.raises(ValueError, match=r'expected an RGB image \[H, W, 3\], got shape \(30, 40\)'):
        BicubicResizeCenterCrop(24, 16)(np.zeros((30, 40), np.uint8))


@pytest.mark.parametrize('compiler', [True, False], ids=['crop-only kernel', 'no compiler: MindSpore Resize'])
def test_eval_transform_with_and_without_compiler(monkeypatch, compiler):
    if compiler and not transforms.compiler_available():
        pytest.skip('no C++ compiler')
    monkeypatch.setattr(transforms, 'compiler_available', lambda: compiler)
    ops = transforms.build_eval_transforms(16, 0.875, 'bicubic', [0.5] * 3, [0.25] * 3)
    assert isinstance(ops[0], BicubicResizeCenterCrop) == compiler
    image = np.random.default_rng(1).integers(0, 256, (41, 27, 3), dtype=np.uint8)
    for op in ops:
        image = op(image)
    expected = (resize_then_crop(np.random.default_rng(1).integers(0, 256, (41, 27, 3), dtype=np.uint8), 18, 16)
                / 255.0 - 0.5) / 0.25
    np.testing.assert_allclose(image, expected.transpose(2, 0, 1), atol=1e-6)


def test_a_resize_that_fails_to_build_falls_back_with_a_warning(cxx, monkeypatch, caplog):
    def broken():
        raise RuntimeError("compiling resize_crop.cc for the eval transform's bicubic resize failed:\nerror: ...")
    monkeypatch.setattr(transforms, "resize_crop_library", broken)
    with caplog.at_level(logging.WARNING):
        operations = transforms.build_eval_transforms(16, 0.875, "bicubic", [0.5] * 3, [0.25] * 3)
    assert not any(isinstance(op, BicubicResizeCenterCrop) for op in operations)
    assert isinstance(operations[0], vision.Resize)
    assert "the crop-only bicubic resize did not build (compiling resize_crop.cc" in caplog.text
