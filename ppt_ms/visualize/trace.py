"""Which input patch each token stands for, after every block.

`BlockSources` runs a traced network once and keeps the source map after
every block, so intermediate layers come from the same forward pass as the
final one (no truncated copies of the model).  `patch_groups` turns one
image's source map into a label per patch.
"""
import numpy as np
from mindspore import nn

PRUNED = -1


class BlockSources(nn.Cell):
    """images [B, 3, H, W] -> (sources, stats [depth, B, 2]); sources[i] is the
    [B, N_i, N0] source map after block i (N_i tokens leave block i).

    Needs a network built with token_reduction.trace_source on and at least
    one reducing block (otherwise there is nothing to trace)."""

    def __init__(self, net):
        super().__init__()
        if not getattr(net, "trace_source", False):
            raise ValueError("BlockSources needs a network built with token_reduction.trace_source=true and a "
                             "token reduction that removes tokens (method ppt, tome or prune with r > 0)")
        self.net = net

    def construct(self, images):
        return self.net.trace(images)[2:]  # (sources, stats); a slice, see models.Block.construct


def patch_groups(source, num_prefix_tokens, grid_size):
    """One image's source map [N, N0] -> labels [gh, gw] (int): the index of the
    token row each patch ended in, or PRUNED (-1) when no token covers it.

    Input token j >= num_prefix_tokens is patch j - num_prefix_tokens in
    row-major order over the grid.  A patch covered by two tokens would mean a
    broken source map, so it is an error, not a guess."""
    source = np.asarray(source)
    gh, gw = grid_size
    if source.ndim != 2 or source.shape[1] != num_prefix_tokens + gh * gw:
        raise ValueError("source map of shape %s does not fit %d prefix tokens + a %dx%d patch grid"
                         % (source.shape, num_prefix_tokens, gh, gw))
    covers = source[:, num_prefix_tokens:] > 0.5
    per_patch = covers.sum(axis=0)
    if per_patch.max(initial=0) > 1:
        raise ValueError("source map is not a partition: patch %d is covered by %d tokens"
                         % (int(per_patch.argmax()), int(per_patch.max())))
    labels = np.where(per_patch == 1, covers.argmax(axis=0), PRUNED)
    return labels.reshape(gh, gw)
