"""Batched index helpers with static shapes (GatherD and one-hot matmul only,
ops that run on Ascend, GPU and CPU)."""
import mindspore as ms
from mindspore import ops


def take_tokens(x, index):
    """Rows `index` of every image: x [B, N, C], index [B, K] int -> [B, K, C]."""
    b, k = index.shape
    index = ops.broadcast_to(index.reshape(b, k, 1), (b, k, x.shape[2]))
    return ops.gather_elements(x, 1, index)


def scatter_add_tokens(target, index, values):
    """target[b, index[b, i]] += values[b, i] for every i, as a one-hot batched
    matmul (Ascend's scatter kernels lack reduction='add'; the matrix units do
    this cheaply). target [B, M, C], index [B, K] int, values [B, K, C]."""
    one_hot = ops.one_hot(index, target.shape[1], ms.Tensor(1.0, values.dtype), ms.Tensor(0.0, values.dtype))
    return target + ops.bmm(one_hot.transpose(0, 2, 1), values)
