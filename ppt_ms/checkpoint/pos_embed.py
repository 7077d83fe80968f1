"""Resize a ViT position embedding to another patch grid, as timm/DeiT do.

timm (0.4.x `resize_pos_embed`) and DeiT's fine-tuning code call
`F.interpolate(grid, size=new_grid, mode='bicubic', align_corners=False)`:
Keys cubic convolution with a = -0.75, source coordinate
x = (i + 0.5) * in / out - 0.5, taps floor(x)-1 .. floor(x)+2 clamped to the
edge. This is the same map in NumPy (float64, so equal to torch up to float32
rounding). Newer timm passes antialias=True, which changes results only when
shrinking the grid.
"""
import math
from typing import Sequence

import numpy as np

from .errors import CheckpointError

CUBIC_A = -0.75


def cubic_tap_weights(t: np.ndarray) -> np.ndarray:
    """Fractional offsets t in [0, 1] ([n]) -> weights [n, 4] of the taps at
    floor-1, floor, floor+1, floor+2."""
    a = CUBIC_A

    def near(d):  # |d| <= 1
        return ((a + 2) * d - (a + 3)) * d * d + 1

    def far(d):  # 1 < |d| < 2
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

    return np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=-1)


def bicubic_matrix(in_size: int, out_size: int) -> np.ndarray:
    """[out_size, in_size] matrix M with resized = M @ samples along one axis."""
    source = (np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5
    base = np.minimum(np.floor(source), in_size - 1)
    weights = cubic_tap_weights(np.clip(source - base, 0.0, 1.0))
    taps = np.clip(base[:, None] + np.arange(-1, 3), 0, in_size - 1).astype(np.int64)
    matrix = np.zeros((out_size, in_size))
    np.add.at(matrix, (np.arange(out_size)[:, None], taps), weights)
    return matrix


def resize_grid(grid: np.ndarray, new_size: Sequence[int]) -> np.ndarray:
    """[H, W, C] -> [H', W', C] by separable bicubic interpolation."""
    rows = bicubic_matrix(grid.shape[0], new_size[0])
    cols = bicubic_matrix(grid.shape[1], new_size[1])
    resized = np.einsum("ih,jw,hwc->ijc", rows, cols, grid.astype(np.float64))
    return resized.astype(grid.dtype)


def resize_pos_embed(pos_embed: np.ndarray, num_prefix_tokens: int, new_grid: Sequence[int]) -> np.ndarray:
    """[1, P + g*g, C] -> [1, P + H'*W', C]: the P prefix (class/distillation)
    embeddings are kept, the square g x g patch grid (row-major) is resized."""
    if pos_embed.ndim != 3 or pos_embed.shape[0] != 1:
        raise CheckpointError("pos_embed must be [1, N, C], got %s" % (pos_embed.shape,))
    prefix, patches = pos_embed[:, :num_prefix_tokens], pos_embed[0, num_prefix_tokens:]
    side = math.isqrt(patches.shape[0])
    if side * side != patches.shape[0]:
        raise CheckpointError("pos_embed %s: %d tokens after %d prefix token(s) do not form a square grid"
                              % (pos_embed.shape, patches.shape[0], num_prefix_tokens))
    grid = resize_grid(patches.reshape(side, side, -1), new_grid)
    return np.concatenate([prefix, grid.reshape(1, -1, grid.shape[-1])], axis=1)
