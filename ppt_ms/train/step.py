"""One training step as a Cell: forward, loss, gradients, (data-parallel mean), clip, lr, AdamW, EMA.

A Cell so that the step follows the MindSpore context: compiled once in graph mode, eager in PyNative.
"""
import mindspore as ms
from mindspore import nn, ops
from mindspore.communication import GlobalComm

from ..models import logits_of

DEFAULT_LOSS_SCALE = 2.0 ** 16
LOSS_SCALE_FACTOR = 2
LOSS_SCALE_WINDOW = 1000


class LossNetwork(nn.Cell):
    """(images [B, 3, H, W], labels [B] or [B, K]) -> scalar loss, on float32 logits (also under AMP)."""

    def __init__(self, net: nn.Cell, loss_fn: nn.Cell):
        super().__init__(auto_prefix=False)
        self.net = net
        self.loss_fn = loss_fn

    def construct(self, images, labels):
        return self.loss_fn(logits_of(self.net(images)).astype(ms.float32), labels)


class TrainStep(nn.Cell):
    """(images, labels) -> (loss averaged over ranks, whether the update was applied).

    With a loss scaler (mixed precision) gradients of loss * scale are computed, unscaled, and the
    update is skipped (and the scale lowered) when any gradient is not finite. With group_size > 1
    (data parallel) gradients and loss are averaged over all ranks before clipping, so every rank
    applies the same update. `learning_rate` (a StepLearningRate) sets the optimizer's rate for
    each update; without it the optimizer keeps its own.
    """

    def __init__(self, net: nn.Cell, loss_fn: nn.Cell, optimizer: nn.Cell, clip_grad=None,
                 loss_scaler=None, group_size: int = 1, ema=None, learning_rate=None):
        super().__init__(auto_prefix=False)
        self.network = LossNetwork(net, loss_fn)
        self.optimizer = optimizer
        self.weights = optimizer.parameters
        self.grad = ops.GradOperation(get_by_list=True, sens_param=True)
        self.clip = clip_grad is not None
        self.clip_norm = float(clip_grad) if self.clip else 1.0
        self.scaled = loss_scaler is not None
        self.loss_scaler = loss_scaler
        self.distributed = group_size > 1
        self.group_size = float(group_size)
        if self.distributed:
            self.grad_reducer = nn.DistributedGradReducer(self.weights, mean=True, degree=group_size,
                                                          group=GlobalComm.WORLD_COMM_GROUP)
            self.all_reduce = ops.AllReduce(ops.ReduceOp.SUM, GlobalComm.WORLD_COMM_GROUP)
        self.use_ema = ema is not None
        self.ema = ema
        self.scheduled = learning_rate is not None
        self.learning_rate = learning_rate

    def update(self, grads):
        """Clip, set this step's learning rate, apply AdamW, then move the EMA shadows."""
        if self.clip:
            grads = ops.clip_by_global_norm(grads, self.clip_norm)
        if self.scheduled:
            grads = ops.depend(grads, self.learning_rate())
        self.optimizer(grads)
        if self.use_ema:
            self.ema()

    def construct(self, images, labels):
        loss = self.network(images, labels)
        scale = ops.ones((), ms.float32)
        if self.scaled:
            scale = self.loss_scaler.scale_value.astype(ms.float32)
        grads = self.grad(self.network, self.weights)(images, labels, scale.astype(loss.dtype))
        if self.scaled:
            grads = self.loss_scaler.unscale(grads)
        if self.distributed:
            grads = self.grad_reducer(grads)
            loss = self.all_reduce(loss) / self.group_size
        finite = ops.ones((), ms.bool_)
        if self.scaled:
            finite = ms.amp.all_finite(grads)
            self.loss_scaler.adjust(finite)
            if finite:
                self.update(grads)
        else:
            self.update(grads)
        return loss, finite


def create_loss_scaler(amp_level: str):
    """A dynamic loss scaler for mixed precision (amp_level O1-O3), None for float32 (O0)."""
    if amp_level == "O0":
        return None
    return ms.amp.DynamicLossScaler(DEFAULT_LOSS_SCALE, LOSS_SCALE_FACTOR, LOSS_SCALE_WINDOW)
