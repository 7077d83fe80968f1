"""The built-in example data set: scikit-learn's handwritten digits as an ImageNet-style folder.

``sklearn.datasets.load_digits`` ships 1797 real 8x8 grayscale scans (values 0..16) of the
digits 0-9 inside the package, so the quick start needs no download. Each scan is
contrast-stretched to 0..255, upscaled with bicubic interpolation and written as an RGB PNG
``root/{train,val}/<digit>/<index>.png`` (index = row in ``load_digits``).
"""
import os

import numpy as np
from PIL import Image

from .image_folder import is_image_file

SPLITS = ('train', 'val')
IMAGE_SIZE = 24  # the quick-start model's input (configs/quickstart.yaml, model.img_size)


def stratified_split(labels, val_fraction, seed):
    """Map every sample index to 'train' or 'val', taking round(val_fraction * n_c) of each class for val.

    labels: [N] ints. Deterministic for a given seed.
    """
    rng = np.random.default_rng(seed)
    split_of = {}
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_val = int(round(val_fraction * len(members)))
        split_of.update({int(index): 'val' for index in members[:n_val]})
        split_of.update({int(index): 'train' for index in members[n_val:]})
    return split_of


def digit_to_image(digit, image_size):
    """[8, 8] scan (any range) -> contrast-stretched RGB PIL image of image_size x image_size."""
    low, high = float(digit.min()), float(digit.max())
    stretched = (digit - low) / (high - low) * 255.0 if high > low else np.zeros_like(digit)
    gray = Image.fromarray(np.round(stretched).astype(np.uint8), mode='L')
    return gray.resize((image_size, image_size), Image.BICUBIC).convert('RGB')


def _expected_files(labels, split_of):
    """Relative path (split/class/index.png) -> sample index for every sample."""
    return {os.path.join(split_of[index], str(int(label)), f'{index:04d}.png'): index
            for index, label in enumerate(labels)}


def _existing_files(root):
    """Relative paths of all image files currently under root/train and root/val."""
    found = set()
    for split in SPLITS:
        for folder, _, names in os.walk(os.path.join(root, split)):
            found.update(os.path.relpath(os.path.join(folder, name), root)
                         for name in names if is_image_file(name))
    return found


def _is_complete(root, expected, image_size):
    """True when exactly the expected PNGs exist and each has the requested size."""
    if _existing_files(root) != set(expected):
        return False
    for relative in expected:
        path = os.path.join(root, relative)
        if os.path.getsize(path) == 0:
            return False
        with Image.open(path) as image:
            if image.size != (image_size, image_size):
                return False
    return True


def _write_png(image, path):
    """Write atomically, so an interrupted run never leaves a truncated PNG behind."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = os.path.join(os.path.dirname(path), '.' + os.path.basename(path) + '.partial')
    image.save(partial, format='PNG')
    os.replace(partial, path)


def make_example_dataset(root, image_size=IMAGE_SIZE, val_fraction=0.2, seed=0):
    """Write the digits folder under ``root`` unless it is already complete.

    Returns a summary dict: root, image_size, classes, counts per split, per-class counts
    per split, and 'created' (False when a complete folder was found and left untouched).
    Raises ValueError if root/train or root/val holds images that do not belong to the set.
    """
    from sklearn.datasets import load_digits

    if not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f'image_size must be an int >= 8 (the scans are 8x8), got {image_size!r}')
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f'val_fraction must be in (0, 1), got {val_fraction!r}')
    digits = load_digits()
    labels = digits.target
    split_of = stratified_split(labels, val_fraction, seed)
    expected = _expected_files(labels, split_of)

    foreign = sorted(_existing_files(root) - set(expected))
    if foreign:
        raise ValueError(f"'{root}' already holds {len(foreign)} images that are not part of the digits "
                         f"set with seed={seed}, val_fraction={val_fraction} (e.g. {foreign[:3]}); "
                         "choose another folder or delete it")
    created = not _is_complete(root, expected, image_size)
    if created:
        for relative, index in sorted(expected.items()):
            _write_png(digit_to_image(digits.images[index], image_size), os.path.join(root, relative))

    classes = [str(label) for label in np.unique(labels)]
    per_class = {split: {name: 0 for name in classes} for split in SPLITS}
    for index, label in enumerate(labels):
        per_class[split_of[index]][str(label)] += 1
    return {'root': str(root), 'image_size': image_size, 'classes': classes,
            'train': sum(per_class['train'].values()), 'val': sum(per_class['val'].values()),
            'per_class': per_class, 'created': created}
