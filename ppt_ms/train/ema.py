"""Exponential moving average of the trainable parameters (timm's ModelEmaV2 rule)."""
from contextlib import contextmanager

from mindspore import nn, ops, ParameterTuple

EMA_PREFIX = "ema"


class ParameterEMA(nn.Cell):
    """Shadow copies (named 'ema.<name>') updated after every optimizer step:
    shadow <- decay * shadow + (1 - decay) * param.  Call the cell to update."""

    def __init__(self, params, decay: float):
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"train.ema_decay must be in (0, 1), got {decay}")
        self.params = ParameterTuple(params)
        self.shadows = self.params.clone(prefix=EMA_PREFIX, init="same")
        for shadow in self.shadows:
            shadow.requires_grad = False
        self.decay = decay

    def construct(self):
        for shadow, param in zip(self.shadows, self.params):
            ops.assign(shadow, self.decay * shadow + (1.0 - self.decay) * param)
        return self.decay


@contextmanager
def averaged_weights(ema: ParameterEMA):
    """Within the block the live parameters hold the EMA values; afterwards the originals are back."""
    saved = [param.data.copy() for param in ema.params]
    try:
        for param, shadow in zip(ema.params, ema.shadows):
            param.set_data(shadow.data.copy())
        yield
    finally:
        for param, value in zip(ema.params, saved):
            param.set_data(value)
