"""The network as MindSpore's ONNX exporter can write it: the one place where
the exported graph differs from the MindSpore one.

MindSpore 2.10's exporter has no converter for Erf (so for exact GELU) and
no TensorScatterAdd, and it exports a Gather with batch_dims wrongly.
Inside `onnx_formulation(net)`:

- every MLP computes GELU(x) = x/2 (1 + erf(x / sqrt 2)) with `erf_rational`;
- every reducer gathers and adds tokens with ops the exporter converts
  correctly (token_reduction/gather.py, `portable`).

Both compute the same function; the exported file is checked against the
unchanged network (ppt_ms.export.verify_export).  After the export,
ppt_ms.onnx_erf puts ONNX's exact Erf in place of each rational erf (one
kernel instead of ~25 in ONNX Runtime).  Outside the context the network
keeps MindSpore's Erf, batched Gather and TensorScatterAdd kernels, which
are faster in MindSpore.
"""
from contextlib import contextmanager

import mindspore as ms
from mindspore import nn, ops

from .layers import Mlp

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


@contextmanager
def onnx_formulation(net: nn.Cell):
    """Switch `net` to the exportable formulation inside the `with`, back after."""
    mlps = [cell for _, cell in net.cells_and_names() if isinstance(cell, Mlp)]
    reducers = [cell for _, cell in net.cells_and_names() if hasattr(cell, "portable")]
    activations = [mlp.act for mlp in mlps]
    try:
        for mlp in mlps:
            mlp.act = RationalGELU()
        for reducer in reducers:
            reducer.portable = True
        yield net
    finally:
        for mlp, act in zip(mlps, activations):
            mlp.act = act
        for reducer in reducers:
            reducer.portable = False
