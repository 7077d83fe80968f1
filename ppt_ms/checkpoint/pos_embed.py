"""Resize a ViT position embedding to another patch grid, as timm 1.x does when it loads a
checkpoint into a model of another input size (DINOv2's 518 px weights used at 224 px).

timm's `resample_abs_pos_embed` calls `F.interpolate(grid, size=new_grid, mode='bicubic',
antialias=True, align_corners=False)`.  That is PyTorch's antialiased resampling (PIL's):
output pixel i is centred at x = (i + 0.5) * s with s = in / out; every input pixel j whose
centre lies within 2 max(s, 1) of it contributes cubic((j + 0.5 - x) / max(s, 1)) with Keys'
a = -0.5, and the weights of each output pixel are normalised to sum 1 (pixels beyond the
border are left out, not clamped).  Shrinking, the kernel widens with s: every source pixel
counts.  This is the same map in NumPy (float64).
"""
import math
from typing import Sequence

import numpy as np

from .errors import CheckpointError

CUBIC_A = -0.5


def cubic(t: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5, at offsets t."""
    t = np.abs(t)
    near = ((CUBIC_A + 2) * t - (CUBIC_A + 3)) * t * t + 1
    far = (((t - 5) * t + 8) * t - 4) * CUBIC_A
    return np.where(t < 1, near, np.where(t < 2, far, 0.0))


def antialiased_bicubic_matrix(in_size: int, out_size: int) -> np.ndarray:
    """[out_size, in_size] matrix M with resized = M @ samples along one axis."""
    scale = in_size / out_size
    stretch = max(scale, 1.0)
    support = 2.0 * stretch
    matrix = np.zeros((out_size, in_size))
    for i in range(out_size):
        centre = scale * (i + 0.5)
        first = max(int(centre - support + 0.5), 0)  # int() truncates, as the C++ cast does
        last = min(int(centre + support + 0.5), in_size)
        taps = np.arange(first, last)
        weights = cubic((taps - centre + 0.5) / stretch)
        matrix[i, first:last] = weights / weights.sum()
    return matrix


def resize_grid(grid: np.ndarray, new_size: Sequence[int]) -> np.ndarray:
    """[H, W, C] -> [H', W', C] by separable antialiased bicubic resampling."""
    rows = antialiased_bicubic_matrix(grid.shape[0], new_size[0])
    cols = antialiased_bicubic_matrix(grid.shape[1], new_size[1])
    resized = np.einsum("ih,jw,hwc->ijc", rows, cols, grid.astype(np.float64))
    return resized.astype(grid.dtype)


def resize_pos_embed(pos_embed: np.ndarray, num_prefix_tokens: int, new_grid: Sequence[int]) -> np.ndarray:
    """[1, P + g*g, C] -> [1, P + H'*W', C]: the P prefix embeddings (class token, registers;
    0 when the embedding covers the patches only) are kept, the square g x g patch grid
    (row-major) is resized."""
    if pos_embed.ndim != 3 or pos_embed.shape[0] != 1:
        raise CheckpointError("pos_embed must be [1, N, C], got %s" % (pos_embed.shape,))
    prefix, patches = pos_embed[:, :num_prefix_tokens], pos_embed[0, num_prefix_tokens:]
    side = math.isqrt(patches.shape[0])
    if side * side != patches.shape[0]:
        raise CheckpointError("pos_embed %s: %d tokens after %d prefix token(s) do not form a square grid"
                              % (pos_embed.shape, patches.shape[0], num_prefix_tokens))
    if (side, side) == tuple(new_grid):
        return pos_embed
    grid = resize_grid(patches.reshape(side, side, -1), new_grid)
    return np.concatenate([prefix, grid.reshape(1, -1, grid.shape[-1])], axis=1)
