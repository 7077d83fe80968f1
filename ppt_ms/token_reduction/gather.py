"""Batched index helpers with static shapes: a batched Gather picks tokens, a
TensorScatterAdd adds a few rows into them (Ascend, GPU and CPU kernels).

A reducer holds them as its `take` and `add` attributes, so that the ONNX
formulation (ppt_ms.formulations.onnx) can give it functions that MindSpore's
ONNX exporter converts correctly."""
import mindspore as ms
from mindspore import ops


def take_tokens(x, index):
    """Rows `index` of every image: x [B, N, C] (or [B, N]), index [B, K] int -> [B, K, C] (or [B, K])."""
    return ops.gather(x, index, 1, batch_dims=1)


def add_into(tokens, slot, updates):
    """tokens [B, M, C] with updates [B, K, C] added to rows slot [B, K] of the
    same image; rows named more than once receive every update."""
    b, k = slot.shape
    image = ops.broadcast_to(ops.arange(b, dtype=ms.int32).reshape(b, 1, 1), (b, k, 1))
    index = ops.concat((image, slot.astype(ms.int32).reshape(b, k, 1)), axis=2)
    return ops.tensor_scatter_add(tokens, index, updates.astype(tokens.dtype))

