"""Batched index helpers with static shapes, built from ops that run on
Ascend, GPU and CPU: a batched Gather picks tokens, a TensorScatterAdd adds
a few rows into them.

With `portable` (set for ONNX export by models/portable.py) both compute the
same thing from ops that MindSpore 2.10 exports correctly: its exporter drops
Gather's batch_dims, has no TensorScatterAdd, and its opset-11 ScatterND keeps
only one of several updates to a row.  The kernels are faster in MindSpore."""
import mindspore as ms
from mindspore import ops


_transposed_bmm = ops.BatchMatMul(transpose_a=True)


def take_tokens(x, index, portable: bool = False):
    """Rows `index` of every image: x [B, N, C] (or [B, N]), index [B, K] int -> [B, K, C] (or [B, K]).
    `portable`: one Gather over all images' rows, image b's index offset by b N."""
    if portable:
        b, n = x.shape[:2]
        rows = index.astype(ms.int32) + ops.arange(b, dtype=ms.int32).reshape(b, 1) * n
        picked = ops.gather(x.reshape((b * n,) + x.shape[2:]), rows.reshape(-1), 0)
        return picked.reshape(index.shape + x.shape[2:])
    return ops.gather(x, index, 1, batch_dims=1)


def add_into(tokens, slot, updates, portable: bool = False):
    """tokens [B, M, C] with updates [B, K, C] added to rows slot [B, K] of the
    same image; rows named more than once receive every update.  Only the K
    rows are touched, unlike a one-hot [B, M, K] matmul, which rewrites all M.

    `portable`: tokens + one_hot(slot)^T updates, a batched matmul.
    """
    if portable:
        rows = ops.one_hot(slot.astype(ms.int32), tokens.shape[1], ops.ones((), tokens.dtype),
                           ops.zeros((), tokens.dtype))
        return tokens + _transposed_bmm(rows, updates.astype(tokens.dtype))
    b, k = slot.shape
    image = ops.broadcast_to(ops.arange(b, dtype=ms.int32).reshape(b, 1, 1), (b, k, 1))
    index = ops.concat((image, slot.astype(ms.int32).reshape(b, k, 1)), axis=2)
    return ops.tensor_scatter_add(tokens, index, updates.astype(tokens.dtype))
