"""Data pipeline tests: tiny folders in tmp_path and the digits set at 16 px.

Expectations come from independent PIL + NumPy references (torchvision/timm semantics),
from sklearn's load_digits, and from properties of Mixup/CutMix.
"""
import io
import math
import os
import warnings

import numpy as np
import pytest
from PIL import Image

from ppt_ms.data import (BatchMixup, check_splits_match, create_dataset, dataset_summary, make_example_dataset,
                         parse_rand_augment, scan_image_folder)
from ppt_ms.data import loader
from ppt_ms.data.source import load_rgb

from helpers.paths import ROOT

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def data_cfg(path, **overrides):
    """A data config with every augmentation off."""
    cfg = dict(path=None if path is None else str(path), train_split='train', val_split='val', batch_size=4, num_workers=1, crop_pct=0.875,
               interpolation='bicubic', mean=list(MEAN), std=list(STD), hflip=0.0, scale=[0.08, 1.0],
               ratio=[0.75, 4 / 3], auto_augment=None, reprob=0.0, mixup=0.0, cutmix=0.0, mixup_prob=1.0,
               mixup_switch_prob=0.5, label_smoothing=0.0)
    cfg.update(overrides)
    return cfg


def noise(height, width, channels=3, seed=0):
    shape = (height, width, channels) if channels > 1 else (height, width)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def save(path, image, **kwargs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image.save(path, **kwargs)
    return str(path)


def normalise_chw(rgb):
    """uint8 [H, W, 3] -> float [3, H, W] normalised with MEAN/STD."""
    return ((rgb / 255.0 - np.array(MEAN)) / np.array(STD)).transpose(2, 0, 1)


def reference_eval(path, img_size, crop_pct):
    """timm/torchvision eval transform in PIL + NumPy: shorter side to floor(img_size / crop_pct), center crop."""
    image = Image.open(path).convert('RGB')
    width, height = image.size
    short = math.floor(img_size / crop_pct)
    if width <= height:
        new_size = (short, int(short * height / width))
    else:
        new_size = (int(short * width / height), short)
    resized = np.asarray(image.resize(new_size, Image.BICUBIC))
    top = int(round((resized.shape[0] - img_size) / 2.0))
    left = int(round((resized.shape[1] - img_size) / 2.0))
    return normalise_chw(resized[top:top + img_size, left:left + img_size])


def collect(dataset):
    images, labels = [], []
    for batch in dataset.create_dict_iterator(output_numpy=True, num_epochs=1):
        images.append(batch['image'])
        labels.append(batch['label'])
    return np.concatenate(images), np.concatenate(labels)


@pytest.fixture
def mixed_folder(tmp_path):
    """train/val with classes a, b; images of many modes and sizes. Returns (root, [(path, label)] of val)."""
    for split in ('train', 'val'):
        save(tmp_path / split / 'a' / '0.png', Image.fromarray(noise(40, 52, seed=1)))
        save(tmp_path / split / 'a' / '1.PNG', Image.fromarray(noise(53, 40, seed=2)))
        save(tmp_path / split / 'a' / '2.jpg', Image.fromarray(noise(45, 47, seed=3)), quality=90)
        save(tmp_path / split / 'b' / '0.png', Image.fromarray(noise(30, 30, channels=1, seed=4), mode='L'))
        save(tmp_path / split / 'b' / '1.png', Image.fromarray(noise(20, 33, channels=4, seed=5), mode='RGBA'))
        save(tmp_path / split / 'b' / '2.JPEG', Image.fromarray(noise(8, 8, seed=6)), quality=95)
        palette = Image.fromarray(noise(25, 31, seed=7)).convert('P', palette=Image.ADAPTIVE, colors=16)
        save(tmp_path / split / 'b' / '3.png', palette)
        save(tmp_path / split / 'b' / '4.bmp', Image.fromarray(noise(36, 28, seed=8)))
    names = {'a': ['0.png', '1.PNG', '2.jpg'], 'b': ['0.png', '1.png', '2.JPEG', '3.png', '4.bmp']}
    val = [(str(tmp_path / 'val' / cls / name), label) for label, cls in enumerate('ab') for name in names[cls]]
    return tmp_path, val


# ---------------------------------------------------------------- example digits set

@pytest.fixture(scope='module')
def digits_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('digits')
    summary = make_example_dataset(str(root), image_size=16)
    return root, summary


def _indices_by_split(root):
    found = {}
    for split in ('train', 'val'):
        for cls in os.listdir(root / split):
            for name in os.listdir(root / split / cls):
                found[int(name.split('.')[0])] = (split, int(cls))
    return found


def test_digits_counts_classes_and_split(digits_root):
    from sklearn.datasets import load_digits
    root, summary = digits_root
    targets = load_digits().target
    found = _indices_by_split(root)
    assert sorted(found) == list(range(len(targets))) == list(range(1797))
    assert all(label == targets[index] for index, (_, label) in found.items())
    assert summary['classes'] == [str(c) for c in range(10)] and summary['created']
    assert summary['train'] + summary['val'] == 1797
    for label, total in enumerate(np.bincount(targets)):
        n_val = sum(1 for index, (split, lab) in found.items() if lab == label and split == 'val')
        assert abs(n_val - 0.2 * total) <= 1, f'class {label} is not stratified'
        assert summary['per_class']['val'][str(label)] == n_val


def test_digits_images_are_the_real_scans(digits_root):
    from sklearn.datasets import load_digits
    root, _ = digits_root
    digits = load_digits()
    found = _indices_by_split(root)
    for index in (0, 5, 333, 1000, 1796):
        split, label = found[index]
        image = Image.open(root / split / str(label) / f'{index:04d}.png')
        assert image.mode == 'RGB' and image.size == (16, 16)
        back = np.asarray(image.convert('L').resize((8, 8), Image.BOX), dtype=np.float64)
        correlation = np.corrcoef(back.ravel(), digits.images[index].ravel())[0, 1]
        assert correlation > 0.9, f'image {index}: correlation {correlation:.3f}'


def test_digits_generation_is_idempotent_and_repairs(digits_root):
    root, _ = digits_root
    some_file = next((root / 'val' / '3').iterdir())
    mtime = some_file.stat().st_mtime_ns
    assert make_example_dataset(str(root), image_size=16)['created'] is False
    assert some_file.stat().st_mtime_ns == mtime
    some_file.unlink()
    assert make_example_dataset(str(root), image_size=16)['created'] is True
    assert some_file.exists()
    foreign = root / 'train' / '1' / 'stranger.png'
    save(foreign, Image.fromarray(noise(16, 16)))
    try:
        with pytest.raises(ValueError, match='stranger.png'):
            make_example_dataset(str(root), image_size=16)
    finally:
        foreign.unlink()


def test_make_example_data_tool_reports_summary(digits_root, capsys):
    from tools.make_example_data import main
    root, _ = digits_root
    main(['--out', str(root), '--image_size', '16'])
    printed = capsys.readouterr().out
    assert 'already complete' in printed and '1438 images' in printed and '359 images' in printed


def test_digits_pipeline_shapes(digits_root):
    root, _ = digits_root
    cfg = data_cfg(root, batch_size=32, mixup=0.8, cutmix=1.0, label_smoothing=0.1, hflip=0.5,
                   auto_augment='rand-m9-mstd0.5-inc1', reprob=0.25)
    batch = next(create_dataset(cfg, 'train', 16, 10, training=True).create_dict_iterator(output_numpy=True))
    assert batch['image'].shape == (32, 3, 16, 16) and batch['image'].dtype == np.float32
    assert batch['label'].shape == (32, 10) and batch['label'].dtype == np.float32
    assert np.all(np.isfinite(batch['image']))
    np.testing.assert_allclose(batch['label'].sum(axis=1), 1.0, atol=1e-6)


# ---------------------------------------------------------------- eval transform and sharding

@pytest.mark.parametrize('workers, thread_decode_max', [(1, 2), (2, 2), (2, 1)],
                         ids=['1 worker', '2 workers, decode in a thread', '2 workers, decode in processes'])
def test_eval_transform_matches_pil_numpy_reference(mixed_folder, monkeypatch, workers, thread_decode_max):
    monkeypatch.setattr(loader, 'THREAD_DECODE_MAX_WORKERS', thread_decode_max)
    assert (loader.decoding_processes(workers) > 0) == (workers > thread_decode_max)
    root, val = mixed_folder
    dataset = create_dataset(data_cfg(root, batch_size=3, num_workers=workers), 'val', 16, 2, training=False)
    images, labels = collect(dataset)
    assert images.dtype == np.float32 and images.shape == (len(val), 3, 16, 16)
    assert labels.dtype == np.int32 and labels.tolist() == [label for _, label in val]
    for image, (path, _) in zip(images, val):
        np.testing.assert_allclose(image, reference_eval(path, 16, 0.875), atol=1e-5, err_msg=path)


def test_eval_center_crop_rounds_like_torchvision(tmp_path):
    # shorter side -> 18: 26x34 -> 18x23, crop offset round(3.5) = 4; 27x41 -> 18x27, round(5.5) = 6 (floor: 3, 5)
    paths = [save(tmp_path / 'val' / 'a' / f'{i}.png', Image.fromarray(noise(h, w, seed=i)))
             for i, (h, w) in enumerate([(26, 34), (27, 41), (41, 27)])]
    images, _ = collect(create_dataset(data_cfg(tmp_path), 'val', 16, 1, training=False))
    for image, path in zip(images, paths):
        np.testing.assert_allclose(image, reference_eval(path, 16, 0.875), atol=1e-5, err_msg=path)


def test_two_shards_cover_the_set_disjointly(mixed_folder):
    root, val = mixed_folder
    references = np.stack([reference_eval(path, 16, 0.875) for path, _ in val])
    seen = []
    for rank in range(2):
        images, _ = collect(create_dataset(data_cfg(root), 'val', 16, 2, training=False, rank=rank, group_size=2))
        distances = np.abs(images[:, None] - references[None]).reshape(len(images), len(val), -1).max(axis=2)
        assert np.all(distances.min(axis=1) < 1e-5)
        seen.append(set(distances.argmin(axis=1).tolist()))
    assert len(seen[0]) == len(seen[1]) == len(val) // 2
    assert seen[0].isdisjoint(seen[1]) and seen[0] | seen[1] == set(range(len(val)))


# ---------------------------------------------------------------- train transform

def _square_folder(root, size=40):
    path = save(root / 'train' / 'a' / '0.png', Image.fromarray(noise(size, size, seed=11)))
    save(root / 'train' / 'b' / '0.png', Image.fromarray(noise(size, size, seed=12)))
    return path


def _first_train_image(root, **overrides):
    cfg = data_cfg(root, batch_size=1, scale=[1.0, 1.0], ratio=[1.0, 1.0], **overrides)
    dataset = create_dataset(cfg, 'train', 16, 2, training=True, shuffle=False)
    return next(dataset.create_dict_iterator(output_numpy=True))['image'][0]


def test_train_transform_with_augmentations_off_is_a_bicubic_resize(tmp_path):
    path = _square_folder(tmp_path)
    whole_image = np.asarray(Image.open(path).resize((16, 16), Image.BICUBIC))
    np.testing.assert_allclose(_first_train_image(tmp_path), normalise_chw(whole_image), atol=1e-5)
    np.testing.assert_allclose(_first_train_image(tmp_path, hflip=1.0), normalise_chw(whole_image[:, ::-1]),
                               atol=1e-5)


def test_random_erasing_replaces_one_rectangle(tmp_path):
    path = _square_folder(tmp_path)
    clean = normalise_chw(np.asarray(Image.open(path).resize((16, 16), Image.BICUBIC)))
    erased = _first_train_image(tmp_path, reprob=1.0)
    changed = np.any(np.abs(erased - clean) > 1e-5, axis=0)
    rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
    box_area = (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)
    assert changed.sum() == box_area
    assert 1 <= box_area <= 100  # 2%-33% of 256 px, plus rounding of the box sides


def test_tiny_grayscale_rgba_images_train(mixed_folder):
    root, _ = mixed_folder
    cfg = data_cfg(root, batch_size=8, hflip=0.5, auto_augment='rand-m9-mstd0.5', reprob=0.25)
    images, labels = collect(create_dataset(cfg, 'train', 16, 2, training=True))
    assert images.shape == (8, 3, 16, 16) and images.dtype == np.float32 and np.all(np.isfinite(images))
    assert labels.dtype == np.int32 and sorted(labels.tolist()) == [0, 0, 0, 1, 1, 1, 1, 1]


@pytest.mark.parametrize('smoothing', [0.0, 0.2])
def test_pipeline_label_formats(mixed_folder, smoothing):
    root, _ = mixed_folder
    cfg = data_cfg(root, batch_size=8, label_smoothing=smoothing)
    _, labels = collect(create_dataset(cfg, 'train', 16, 2, training=True, shuffle=False))
    if smoothing == 0:
        assert labels.dtype == np.int32 and labels.tolist() == [0, 0, 0, 1, 1, 1, 1, 1]
    else:
        expected = np.full((8, 2), 0.1, np.float32)
        expected[np.arange(8), [0, 0, 0, 1, 1, 1, 1, 1]] = 0.9
        assert labels.dtype == np.float32
        np.testing.assert_allclose(labels, expected, atol=1e-6)


def test_none_switches_augmentations_off(tmp_path):
    path = _square_folder(tmp_path)
    off = dict(hflip=None, reprob=None, mixup=None, cutmix=None, mixup_prob=None, label_smoothing=None)
    image = _first_train_image(tmp_path, **off)
    np.testing.assert_allclose(image, normalise_chw(np.asarray(Image.open(path).resize((16, 16), Image.BICUBIC))),
                               atol=1e-5)
    _, labels = collect(create_dataset(data_cfg(tmp_path, **off), 'train', 16, 2, training=True, batch_size=2))
    assert labels.dtype == np.int32


def test_pipeline_mixup_gives_soft_targets(mixed_folder):
    root, _ = mixed_folder
    cfg = data_cfg(root, batch_size=4, mixup=0.8, cutmix=1.0, label_smoothing=0.1)
    images, targets = collect(create_dataset(cfg, 'train', 16, 2, training=True))
    assert images.shape == (8, 3, 16, 16) and targets.shape == (8, 2) and targets.dtype == np.float32
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-6)
    assert targets.min() >= 0.05 - 1e-6 and targets.max() <= 0.95 + 1e-6


# ---------------------------------------------------------------- bad input

def test_missing_split_names_the_path(mixed_folder):
    root, _ = mixed_folder
    with pytest.raises(ValueError, match='split folder not found.*test'):
        scan_image_folder(str(root), 'test')


def test_split_without_class_folders(tmp_path):
    save(tmp_path / 'val' / 'loose.jpg', Image.fromarray(noise(8, 8)))
    with pytest.raises(ValueError, match='no class folders.*1 loose images'):
        scan_image_folder(str(tmp_path), 'val')


def test_empty_class_folder_is_named(mixed_folder):
    root, _ = mixed_folder
    os.makedirs(root / 'train' / 'c_empty')
    (root / 'train' / 'c_empty' / 'notes.txt').write_text('not an image')
    with pytest.raises(ValueError, match='c_empty.*contains no images'):
        scan_image_folder(str(root), 'train')


def test_mismatched_val_classes_are_listed(mixed_folder):
    root, _ = mixed_folder
    os.rename(root / 'val' / 'b', root / 'val' / 'bee')
    with pytest.raises(ValueError, match=r"only in train: \['b'\]; only in val: \['bee'\]"):
        create_dataset(data_cfg(root), 'val', 16, 2, training=False)
    with pytest.raises(ValueError, match='only in'):
        check_splits_match(['a', 'b'], ['a'])
    check_splits_match(['a', 'b'], ['b', 'a'])


def test_unreadable_images_are_skipped_and_counted(mixed_folder):
    root, _ = mixed_folder
    (root / 'val' / 'a' / 'empty.jpg').write_bytes(b'')
    buffer = io.BytesIO()
    Image.fromarray(noise(64, 64)).save(buffer, format='JPEG', quality=90)
    truncated = root / 'val' / 'b' / 'truncated.jpg'
    truncated.write_bytes(buffer.getvalue()[:len(buffer.getvalue()) // 2])
    (root / 'val' / 'b' / 'garbage.jpeg').write_bytes(b'not an image at all' * 10)

    with pytest.warns(UserWarning, match='skipped 1 unreadable images'):
        samples, _ = scan_image_folder(str(root), 'val')
    assert len(samples) == 8 + 2  # the quick check only catches the zero-byte file
    with pytest.warns(UserWarning, match='skipped 3 unreadable images'):
        summary = dataset_summary(str(root), verify_images=True)
    assert summary['splits']['val']['images'] == 8 and len(summary['splits']['val']['skipped']) == 3
    assert summary['splits']['train']['skipped'] == [] and summary['splits']['val']['per_class'] == {'a': 3, 'b': 5}
    with pytest.raises(RuntimeError, match='truncated.jpg'):
        load_rgb(str(truncated))


def test_config_and_model_mismatches_raise(mixed_folder):
    root, _ = mixed_folder
    with pytest.raises(ValueError, match='2 class folders but the model has num_classes=1000'):
        create_dataset(data_cfg(root), 'val', 16, 1000, training=False)
    with pytest.raises(ValueError, match="'path' is not set"):
        create_dataset(data_cfg(None), 'val', 16, 2, training=False)
    cfg = data_cfg(root)
    del cfg['crop_pct']
    with pytest.raises(KeyError, match='crop_pct'):
        create_dataset(cfg, 'val', 16, 2, training=False)
    with pytest.raises(ValueError, match='0-1 scale'):
        create_dataset(data_cfg(root, mean=[123.7, 116.3, 103.5]), 'val', 16, 2, training=False)
    with pytest.raises(ValueError, match="split must be one of"):
        create_dataset(data_cfg(root), 'validation', 16, 2, training=False)
    with pytest.raises(ValueError, match='fewer than batch_size=64'):
        create_dataset(data_cfg(root), 'train', 16, 2, training=True, batch_size=64)


# ---------------------------------------------------------------- RandAugment strings

def test_parse_rand_augment():
    spec = parse_rand_augment('rand-m9-mstd0.5')
    assert (spec.num_ops, spec.magnitude, spec.magnitude_std) == (2, 9, 0.5)
    spec = parse_rand_augment('rand-m7-n3-mstd1.0-inc1')
    assert (spec.num_ops, spec.magnitude, spec.magnitude_std, spec.increasing) == (3, 7, 1.0, True)
    for bad, message in [('augmix-m5', 'only timm RandAugment'), ('rand-m11', 'magnitude'),
                         ('rand-m9-x3', "unknown section 'x3'"), ('rand-mfoo', "at 'mfoo'")]:
        with pytest.raises(ValueError, match=message):
            parse_rand_augment(bad)


# ---------------------------------------------------------------- Mixup / CutMix

def _batch(size=6, classes=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(size, 3, 8, 8)).astype(np.float32), rng.permutation(classes)[:size]


@pytest.mark.parametrize('mixup_alpha, cutmix_alpha, switch_prob', [(0.8, 0.0, 0.5), (0.8, 1.0, 0.0)])
def test_mixup_is_a_convex_blend_with_the_flipped_batch(mixup_alpha, cutmix_alpha, switch_prob):
    images, labels = _batch()
    lams = []
    for seed in range(5):
        mixer = BatchMixup(6, mixup_alpha, cutmix_alpha, prob=1.0, switch_prob=switch_prob, label_smoothing=0.0,
                           seed=seed)
        mixed, targets = mixer(images, labels)
        lam = targets[0, labels[0]]
        lams.append(lam)
        np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-6)
        np.testing.assert_allclose(targets[np.arange(6), labels[::-1]], 1.0 - lam, atol=1e-6)
        np.testing.assert_allclose(mixed, lam * images + (1.0 - lam) * images[::-1], atol=1e-5)
    assert len(set(np.round(lams, 6))) == 5 and all(0.0 < lam < 1.0 for lam in lams)


@pytest.mark.parametrize('mixup_alpha, cutmix_alpha, switch_prob', [(0.0, 1.0, 0.5), (0.8, 1.0, 1.0)])
def test_cutmix_pastes_a_box_and_lam_is_its_complement(mixup_alpha, cutmix_alpha, switch_prob):
    images, labels = _batch()
    for seed in range(8):
        mixer = BatchMixup(6, mixup_alpha, cutmix_alpha, prob=1.0, switch_prob=switch_prob, label_smoothing=0.0,
                           seed=seed)
        mixed, targets = mixer(images, labels)
        from_partner = np.all(mixed == images[::-1], axis=1) & np.any(mixed != images, axis=1)
        assert np.all((mixed == images) | (mixed == images[::-1]))
        assert np.all(from_partner == from_partner[0])  # the same box in every image
        lam = targets[0, labels[0]]
        np.testing.assert_allclose(from_partner[0].mean(), 1.0 - lam, atol=1e-6)
        np.testing.assert_allclose(targets[np.arange(6), labels[::-1]], 1.0 - lam, atol=1e-6)


def test_label_smoothing_bounds_and_no_mix_when_prob_zero():
    images, labels = _batch(size=8, classes=10, seed=3)
    smoothing, classes = 0.1, 10
    for seed in range(6):
        mixed, targets = BatchMixup(classes, 0.8, 1.0, 1.0, 0.5, smoothing, seed=seed)(images, labels)
        np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-6)
        assert targets.min() >= smoothing / classes - 1e-7
        assert targets.max() <= 1.0 - smoothing + smoothing / classes + 1e-7
    mixed, targets = BatchMixup(classes, 0.8, 1.0, 0.0, 0.5, smoothing, seed=0)(images, labels)
    np.testing.assert_array_equal(mixed, images)
    expected = np.full((8, classes), 0.01)
    expected[np.arange(8), labels] = 0.91
    np.testing.assert_allclose(targets, expected, atol=1e-7)


def test_mixup_rejects_bad_settings():
    with pytest.raises(ValueError, match='not both 0'):
        BatchMixup(10, 0.0, 0.0, 1.0, 0.5, 0.1)
    with pytest.raises(ValueError, match='mixup_switch_prob'):
        BatchMixup(10, 0.8, 1.0, 1.0, 1.5, 0.1)
    with pytest.raises(ValueError, match='label_smoothing'):
        BatchMixup(10, 0.8, 1.0, 1.0, 0.5, 1.0)


def test_scan_accepts_extensions_case_insensitively(mixed_folder):
    root, val = mixed_folder
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        samples, classes = scan_image_folder(str(root), 'val')
    assert classes == ['a', 'b'] and samples == val


def _two_core_machine(monkeypatch):
    """This process sees 2 cores, for ppt_ms and for MindSpore's check of num_parallel_workers."""
    from mindspore.dataset.core import validator_helpers
    monkeypatch.setattr(validator_helpers, "cpu_count", lambda: 2)
    monkeypatch.setattr(loader, "machine_cores", lambda: 2)


SHIPPED_CONFIGS = sorted(str(p) for p in (ROOT / "configs").rglob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=lambda p: os.path.relpath(p, ROOT / "configs"))
def test_every_shipped_config_builds_its_pipelines_on_two_cores(path, monkeypatch, mixed_folder):
    """Each config's data section on a 2-core machine: the val pipeline and the image-folder pipeline
    of eval, sweep and embed are built (MindSpore checks num_parallel_workers as they are)."""
    from ppt_ms.config import load_config
    _two_core_machine(monkeypatch)
    data = dict(load_config(path)["data"], path=str(mixed_folder[0]), val_split="val")
    assert loader.data_workers(data) <= 2
    num_classes = len(loader.scan_role(data, "val").class_names)
    create_dataset(data, "val", 16, num_classes, training=False, batch_size=2)
    loader.create_image_dataset(data, str(mixed_folder[0]), 16, batch_size=2)


def test_num_workers_beyond_the_machine_is_lowered_with_a_warning(monkeypatch, mixed_folder, caplog):
    _two_core_machine(monkeypatch)
    with caplog.at_level("WARNING"):
        assert loader.data_workers(data_cfg(mixed_folder[0], num_workers=64)) == 2
    assert "data.num_workers 64" in caplog.text and "2 core" in caplog.text
    dataset, _ = loader.create_image_dataset(data_cfg(mixed_folder[0], num_workers=64), str(mixed_folder[0]), 16, 2)
    assert next(dataset.create_tuple_iterator(output_numpy=True))[0].shape == (2, 3, 16, 16)
    assert loader.data_workers(data_cfg(mixed_folder[0], num_workers="auto")) == 2
    monkeypatch.setattr(loader, "machine_cores", lambda: 64)
    assert loader.data_workers(data_cfg(mixed_folder[0], num_workers="auto")) == loader.AUTO_WORKERS_CAP
