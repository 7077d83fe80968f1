"""Batched index helpers with static shapes, built from ops that run on
Ascend, GPU and CPU: a batched Gather for picking tokens and a one-hot batched
matmul for adding tokens together."""
import mindspore as ms
from mindspore import ops


def take_tokens(x, index):
    """Rows `index` of every image: x [B, N, C], index [B, K] int -> [B, K, C]."""
    return ops.gather(x, index, 1, batch_dims=1)


def merge_matrix(slot, num_slots, active=None):
    """One-hot routing matrix [B, num_slots, K]: entry (s, i) is 1 where token i
    goes into slot s (slot [B, K] int).  `active` [B] (0/1) switches an image's
    merges off.  Adding tokens through a batched matmul replaces a scatter-add,
    whose reduction='add' Ascend does not support, and uses the matrix units."""
    matrix = ops.one_hot(slot, num_slots, ms.Tensor(1.0, ms.float32), ms.Tensor(0.0, ms.float32), axis=1)
    if active is not None:
        matrix = matrix * active.reshape(-1, 1, 1)
    return matrix
