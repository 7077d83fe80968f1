"""``create_dataset``: scanned image folder -> batched, augmented mindspore.dataset pipeline.

Reads the ``data`` config section by item: path, train_split, val_split, batch_size,
num_workers, crop_pct, interpolation, mean, std, and for training also hflip, scale, ratio,
auto_augment, reprob, mixup, cutmix, mixup_prob, mixup_switch_prob, label_smoothing.
Optional: verify_images (default false; true decodes every file once while scanning).
"""
import logging
import multiprocessing
import os

import mindspore as ms
import mindspore.dataset as ds
import mindspore.dataset.transforms as transforms

from .image_folder import IMAGE_EXTENSIONS, check_splits_match, list_class_names, list_images, scan_split
from .mixup import BatchMixup
from .source import DecodedImages
from .transforms import build_eval_transforms, build_train_transforms

SPLIT_ROLES = ('train', 'val')
_logger = logging.getLogger(__name__)


def config_value(data_cfg, key, default=KeyError):
    """data_cfg[key]; a missing key raises KeyError naming it unless a default is given."""
    try:
        return data_cfg[key]
    except KeyError:
        if default is KeyError:
            raise KeyError(f"data config has no key '{key}'") from None
        return default


def config_switch(data_cfg, key):
    """A numeric augmentation setting where None (like 0) means off: returns 0.0 for None."""
    value = config_value(data_cfg, key)
    return 0.0 if value is None else value


def scan_role(data_cfg, split, verify_images=False):
    """Scan the folder configured for split 'train' or 'val'; classes must match the other split if it exists."""
    if split not in SPLIT_ROLES:
        raise ValueError(f"split must be one of {SPLIT_ROLES} (the folder names come from "
                         f"train_split / val_split), got '{split}'")
    root = config_value(data_cfg, 'path')
    if root is None:
        raise ValueError("data config 'path' is not set: point it at a folder with train/ and val/ "
                         "(python tools/make_example_data.py --out data/digits writes an example)")
    folders = {role: config_value(data_cfg, f'{role}_split') for role in SPLIT_ROLES}
    scan = scan_split(root, folders[split], verify_images)
    other = folders['val' if split == 'train' else 'train']
    if other != folders[split] and os.path.isdir(os.path.join(root, other)):
        classes = {folders[split]: scan.class_names, other: list_class_names(os.path.join(root, other))}
        check_splits_match(classes[folders['train']], classes[folders['val']], folders['train'], folders['val'])
    return scan


def build_mixup(data_cfg, num_classes, seed, rank):
    """BatchMixup (with label smoothing folded in) when mixup or cutmix is on, else None."""
    mixup, cutmix = config_switch(data_cfg, 'mixup'), config_switch(data_cfg, 'cutmix')
    prob = config_switch(data_cfg, 'mixup_prob')
    if not ((mixup > 0 or cutmix > 0) and prob > 0):
        return None
    return BatchMixup(num_classes, mixup, cutmix, prob, config_switch(data_cfg, 'mixup_switch_prob'),
                      config_switch(data_cfg, 'label_smoothing'), seed=[seed, rank])


def smoothing_ops(smoothing, num_classes):
    """Per-sample int label -> float32 [num_classes] smoothed one-hot (timm's values)."""
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f'label_smoothing must be in [0, 1), got {smoothing}')
    return [transforms.OneHot(num_classes, smoothing_rate=smoothing), transforms.TypeCast(ms.float32)]


# Up to this many workers, PIL decodes in one thread of this process and the workers run the transforms.
# Handing decoded images between processes cost more than it saved: on 2 cores, 500x375 JPEGs through the
# eval transforms went from 250 (2 decoding processes) to 430-460 images/s, and 630-750 with the crop-only
# resize (MindSpore's own ImageFolderDataset + C++ Decode: ~400; its Decode took 2.2 ms a JPEG, PIL 1.2).
# The decode stays in Python, so a corrupt file is named.
THREAD_DECODE_MAX_WORKERS = 2


AUTO_WORKERS_CAP = 8  # num_workers auto: beyond this, more workers for one eval/train pipeline rarely pay


def machine_cores():
    """The cores this process may run on, and never more than MindSpore's bound on
    num_parallel_workers (multiprocessing.cpu_count())."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = multiprocessing.cpu_count()
    return max(1, min(usable, multiprocessing.cpu_count()))


def data_workers(data_cfg):
    """data.num_workers as the pipeline runs it: 'auto' is the machine's cores (at most
    AUTO_WORKERS_CAP); a number above the cores is lowered to them with a warning (MindSpore
    refuses num_parallel_workers above its cpu count)."""
    value = config_value(data_cfg, 'num_workers')
    cores = machine_cores()
    if value == 'auto':
        return min(cores, AUTO_WORKERS_CAP)
    if value > cores:
        _logger.warning("data.num_workers %d is more than the %d core(s) this machine gives the process: "
                        "using %d (data.num_workers: auto does so without this warning)", value, cores, cores)
        return cores
    return max(1, int(value))


def decoding_processes(workers):
    """How many worker processes decode images (0: one thread of this process does)."""
    return 0 if workers <= THREAD_DECODE_MAX_WORKERS else workers


def _image_transforms(data_cfg, img_size, training):
    common = dict(img_size=img_size, interpolation=config_value(data_cfg, 'interpolation'),
                  mean=config_value(data_cfg, 'mean'), std=config_value(data_cfg, 'std'))
    if not training:
        return build_eval_transforms(crop_pct=config_value(data_cfg, 'crop_pct'), **common)
    return build_train_transforms(scale=config_value(data_cfg, 'scale'), ratio=config_value(data_cfg, 'ratio'),
                                  hflip=config_switch(data_cfg, 'hflip'),
                                  auto_augment=config_value(data_cfg, 'auto_augment'),
                                  reprob=config_switch(data_cfg, 'reprob'), **common)


def create_dataset(data_cfg, split, img_size, num_classes, training, batch_size=None, rank=0, group_size=1,
                   shuffle=None, seed=0, drop_remainder=None):
    """Batched pipeline over the images of split 'train' or 'val'.

    Columns: image float32 [B, 3, img_size, img_size]; label int32 [B] class ids, or float32
    [B, num_classes] soft targets when training with mixup/cutmix or label smoothing.
    training selects the augmentation (train) or the DeiT eval transform. shuffle and
    drop_remainder default to ``training``; batch_size defaults to data_cfg['batch_size'].
    Sharding: rank ``rank`` of ``group_size`` reads (and decodes) only 1/group_size of the samples;
    when the count is not divisible, MindSpore's sampler repeats a few samples so all shards have
    equal length.  The attribute ``files`` lists the images read (all shards').
    A sharded eval pipeline (not training) has a third column, index int32 [B],
    and the attribute ``shard`` = (rank, group_size, number of samples), so that evaluation can
    count every image exactly once.
    Shuffling and the random augmentations follow mindspore.dataset.config.set_seed (use the same
    seed on all ranks); ``seed`` (with rank) seeds the Mixup/CutMix draws.
    """
    if not isinstance(img_size, int) or img_size < 1:
        raise ValueError(f'img_size must be a positive int, got {img_size!r}')
    if not 0 <= rank < group_size:
        raise ValueError(f'rank must be in [0, group_size={group_size}), got {rank}')
    batch_size = config_value(data_cfg, 'batch_size') if batch_size is None else batch_size
    shuffle = training if shuffle is None else shuffle
    drop_remainder = training if drop_remainder is None else drop_remainder
    workers = data_workers(data_cfg)

    scan = scan_role(data_cfg, split, config_value(data_cfg, 'verify_images', False))
    if len(scan.class_names) != num_classes:
        raise ValueError(f"'{scan.split_dir}' has {len(scan.class_names)} class folders but the model has "
                         f"num_classes={num_classes}")
    shard_size = -(-len(scan.samples) // group_size)
    if drop_remainder and shard_size < batch_size:
        raise ValueError(f"'{scan.split_dir}' gives {shard_size} images per shard, fewer than "
                         f"batch_size={batch_size}: with drop_remainder no batch would be produced")
    _logger.info('%s: %d images, %d classes, %d skipped as unreadable', scan.split_dir, len(scan.samples),
                 len(scan.class_names), len(scan.skipped))

    sharding = dict(num_shards=group_size, shard_id=rank) if group_size > 1 else {}
    indexed = group_size > 1 and not training
    decoders = decoding_processes(workers)
    dataset = ds.GeneratorDataset(DecodedImages(scan.samples, with_index=indexed),
                                  column_names=['image', 'label'] + (['index'] if indexed else []), shuffle=shuffle,
                                  num_parallel_workers=max(1, decoders), python_multiprocessing=decoders > 0,
                                  **sharding)
    dataset = dataset.map(operations=_image_transforms(data_cfg, img_size, training), input_columns='image',
                          num_parallel_workers=workers)
    mixer = build_mixup(data_cfg, num_classes, seed, rank) if training else None
    smoothing = config_switch(data_cfg, 'label_smoothing') if training else 0.0
    if mixer is None and smoothing > 0:
        dataset = dataset.map(operations=smoothing_ops(smoothing, num_classes), input_columns='label')
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    if mixer is not None:
        dataset = dataset.map(operations=mixer, input_columns=['image', 'label'],
                              num_parallel_workers=1, python_multiprocessing=False)
    dataset.image_count = shard_size if group_size > 1 else len(scan.samples)  # for progress displays
    dataset.files = [path for path, _ in scan.samples]  # every shard's
    dataset.skipped = scan.skipped  # [(path, reason)] left out as unreadable
    if indexed:
        dataset.shard = (rank, group_size, len(scan.samples))
    return dataset


def shard_positions(rank: int, group_size: int, total: int, start: int, count: int):
    """Of the samples `start` .. `start + count - 1` of shard `rank` (in reading order), the index
    each must be, and whether it is the shard's own or one MindSpore's sampler repeats to even out
    the shards.  Its order, measured (mindspore.dataset 2.10, shuffle off): shard r reads samples
    r, r + G, r + 2G, ..., wrapping around past the end; what wraps around is a repeat."""
    virtual = [rank + (start + k) * group_size for k in range(count)]
    return [v % total for v in virtual], [v < total for v in virtual]


def create_image_dataset(data_cfg, folder, img_size, batch_size):
    """Batched eval pipeline over every image below `folder` (any sub-folders, read recursively in
    sorted order), or over the one image file `folder` names; labelled or not.  Unreadable images
    and files of other kinds are left out with a warning naming them.
    -> (dataset with columns image [B, 3, img_size, img_size] and a placeholder label, the files);
    the dataset's `left_out` lists those notes for reports."""
    images = list_images(folder, config_value(data_cfg, 'verify_images', False))
    notes = images.notes()
    for note in notes:
        _logger.warning("%s: %s", folder, note)
    if not images.files:
        raise ValueError(f"no readable images in '{folder}' (extensions: {', '.join(IMAGE_EXTENSIONS)})"
                         + (f"; {'; '.join(notes)}" if notes else ""))
    dataset = image_list_dataset(data_cfg, images.files, img_size, batch_size)
    dataset.left_out = notes
    return dataset, images.files


def image_list_dataset(data_cfg, files, img_size, batch_size):
    """Batched eval pipeline over the image files `files`, in that order (columns image, placeholder label)."""
    dataset = ds.GeneratorDataset(DecodedImages([(path, 0) for path in files]), column_names=['image', 'label'],
                                  shuffle=False)
    dataset = dataset.map(operations=_image_transforms(data_cfg, img_size, False), input_columns='image',
                          num_parallel_workers=data_workers(data_cfg)).batch(batch_size, drop_remainder=False)
    dataset.image_count = len(files)  # for progress displays
    return dataset
