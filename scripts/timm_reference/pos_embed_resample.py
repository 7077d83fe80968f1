"""Write tests/data/timm_pos_embed_resample.npz: position embeddings resampled by timm 1.x's
resample_abs_pos_embed (bicubic, antialias=True, as timm's checkpoint filter calls it), from
seeded random grids.  Run in the side environment with torch and timm (see README):

    PYTHONPATH=../shared/tools/tvstub_timm1 python scripts/timm_reference/pos_embed_resample.py out.npz
"""
import sys

import numpy as np
import torch
from timm.layers import resample_abs_pos_embed

# (old grid, new grid, prefix tokens): DINOv2 518 px -> 224 px at patch 14, upsampling, uneven
CASES = [((37, 37), (16, 16), 0), ((14, 14), (16, 16), 1), ((7, 7), (5, 9), 5), ((3, 3), (8, 2), 2)]

if __name__ == "__main__":
    rng = np.random.default_rng(0)
    arrays = {}
    for index, (old, new, prefix) in enumerate(CASES):
        posemb = rng.standard_normal((1, prefix + old[0] * old[1], 3)).astype(np.float32)
        resized = resample_abs_pos_embed(torch.from_numpy(posemb), new_size=list(new), old_size=list(old),
                                         num_prefix_tokens=prefix, interpolation="bicubic", antialias=True)
        arrays.update({"%d_input" % index: posemb, "%d_output" % index: resized.numpy(),
                       "%d_case" % index: np.array(list(old) + list(new) + [prefix])})
    np.savez(sys.argv[1], **arrays)
