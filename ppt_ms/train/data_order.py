"""Training batches whose order is a function of (seed, epoch), so a run can resume mid-epoch.

Before an epoch's pipeline is built, the data seed is set to epoch_seed(seed, epoch): the shuffle
(and, with one data worker, every random augmentation and Mixup/CutMix draw) depends on nothing
else. Resuming at step k of an epoch rebuilds that epoch's pipeline and discards its first k
batches (they are produced, so every random draw happens as in the unbroken run).
Limits, from mindspore.dataset: with data.num_workers > 1 the order of the samples is still
reproduced but the random augmentations are not (set data.num_workers: 1 for bitwise resumes),
and the model's own randomness (stochastic depth) is not checkpointed.
"""
import mindspore.dataset as ds
import numpy as np

from ..data import create_dataset


def epoch_seed(seed: int, epoch: int) -> int:
    """A well-mixed 32-bit data seed for (seed, epoch)."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def train_dataset(cfg, epoch: int, rank: int = 0, group_size: int = 1):
    """The training pipeline of `epoch` for this rank (batch size data.batch_size per rank)."""
    seed = epoch_seed(cfg.system.seed, epoch)
    ds.config.set_seed(seed)
    return create_dataset(cfg.data, "train", cfg.model.img_size, cfg.model.num_classes, training=True,
                          rank=rank, group_size=group_size, seed=seed)


def epoch_batches(dataset, skip: int = 0):
    """(images, labels) Tensors of one pass over `dataset`, without the first `skip` batches."""
    for index, batch in enumerate(dataset.create_tuple_iterator(num_epochs=1)):
        if index >= skip:
            yield batch
