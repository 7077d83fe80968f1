"""Synthetic input batches, for exports and benchmarks where the values do not matter."""
import numpy as np
import mindspore as ms


def sample_images(batch_size: int, img_size: int, seed: int = 0) -> ms.Tensor:
    """A deterministic batch [batch_size, 3, img_size, img_size] float32 of
    standard normal values (the range of ImageNet-normalised images)."""
    rng = np.random.default_rng(seed)
    return ms.Tensor(rng.standard_normal((batch_size, 3, img_size, img_size), dtype=np.float32))
