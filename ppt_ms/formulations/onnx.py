"""The network as MindSpore's ONNX exporter can write it: the one place where
the exported graph differs from the MindSpore one.

MindSpore 2.10's exporter has no converter for Erf (so for exact GELU) and
no TensorScatterAdd, and it exports a Gather with batch_dims wrongly.
Inside `onnx_formulation(net)`:

- every exact-GELU MLP computes x/2 (1 + erf(x / sqrt 2)) with `erf_rational` (QuickGELU
  and the tanh GELU export as they are);
- every reducer gathers and adds tokens with ops the exporter converts
  correctly (`take_tokens_flat`, `add_into_by_matmul`).

Both compute the same function; the exported file is checked against the
unchanged network (ppt_ms.export.verify_export).  After the export,
onnx_erf.py puts ONNX's exact Erf in place of each rational erf (one
kernel instead of ~25 in ONNX Runtime).  Outside the context the network
keeps MindSpore's Erf, batched Gather and TensorScatterAdd kernels, which
are faster in MindSpore.
"""
from contextlib import contextmanager

import mindspore as ms
from mindspore import nn, ops

from ..models.layers import GELU, Mlp
from ..token_reduction.reducers import TokenReducer

_transposed_bmm = ops.BatchMatMul(transpose_a=True)

# erf(x) ~ x P(x^2) / Q(x^2) on |x| <= ERF_CLAMP, +-1 beyond (erf(3.92) = 1 - 5e-8).
# Fitted for this project by iteratively reweighted least squares on the relative
# error (float64).  Evaluated in float32 it is within 4.1e-7 of erf everywhere
# (6 float32 ulps); GELU is then within 8e-7 of exact for |x| <= 6.
ERF_CLAMP = 3.92
ERF_P = (1.1283791093, 0.19988268404, 0.050567436831, 0.0036996992928, 0.00014179588022,
         -1.9574394359e-06, 1.9921934578e-08)
ERF_Q = (1.0, 0.51047307939, 0.11498079915, 0.014349408563, 0.00095554830199)


def _polynomial(coefficients, t):
    """sum_k coefficients[k] t^k by Horner's rule."""
    result = ops.full_like(t, coefficients[-1])
    for c in coefficients[-2::-1]:
        result = result * t + c
    return result


def erf_rational(x):
    """erf of float32 x from Mul, Add, Div and Clip only (any shape)."""
    x = ops.clamp(x, -ERF_CLAMP, ERF_CLAMP)
    t = x * x
    return x * _polynomial(ERF_P, t) / _polynomial(ERF_Q, t)


class RationalGELU(nn.Cell):
    """Exact GELU, x/2 (1 + erf(x / sqrt 2)), with erf from `erf_rational`."""

    def construct(self, x):
        y = x.astype(ms.float32)
        return (0.5 * y * (1.0 + erf_rational(y * 0.7071067811865476))).astype(x.dtype)


def take_tokens_flat(x, index):
    """take_tokens (token_reduction/gather.py) as one Gather over all images' rows, image b's
    index offset by b N: the exporter drops a Gather's batch_dims."""
    b, n = x.shape[:2]
    rows = index.astype(ms.int32) + ops.arange(b, dtype=ms.int32).reshape(b, 1) * n
    picked = ops.gather(x.reshape((b * n,) + x.shape[2:]), rows.reshape(-1), 0)
    return picked.reshape(index.shape + x.shape[2:])


def add_into_by_matmul(tokens, slot, updates):
    """add_into (token_reduction/gather.py) as tokens + one_hot(slot)^T updates, a batched matmul:
    the exporter has no TensorScatterAdd, and its opset-11 ScatterND keeps only one of several
    updates to a row."""
    rows = ops.one_hot(slot.astype(ms.int32), tokens.shape[1], ops.ones((), tokens.dtype),
                       ops.zeros((), tokens.dtype))
    return tokens + _transposed_bmm(rows, updates.astype(tokens.dtype))


def _swap_in_onnx_ops(net):
    """Give every exact-GELU MLP a RationalGELU and every reducer the exportable index functions,
    in place; -> [(cell, attribute, what it held)] to put back.  QuickGELU and GELU's tanh
    approximation export as they are (Sigmoid, GeLU) and are left alone."""
    replaced = []
    for _, cell in net.cells_and_names():
        if isinstance(cell, Mlp) and isinstance(cell.act, GELU):
            replaced.append((cell, "act", cell.act))
            cell.act = RationalGELU()
        if isinstance(cell, TokenReducer):
            replaced += [(cell, "take", cell.take), (cell, "add", cell.add)]
            cell.take, cell.add = take_tokens_flat, add_into_by_matmul
    return replaced


def to_onnx_form(net: nn.Cell) -> nn.Cell:
    """`net`, in place, in the formulation MindSpore's ONNX exporter writes correctly; returns `net`."""
    _swap_in_onnx_ops(net)
    return net


@contextmanager
def onnx_formulation(net: nn.Cell):
    """`net` in its ONNX form inside the `with` (to export it); after it, exactly the cells and
    functions it had before."""
    replaced = _swap_in_onnx_ops(net)
    try:
        yield net
    finally:
        for cell, attribute, original in reversed(replaced):
            setattr(cell, attribute, original)
