"""DeiT's optimizer: MindSpore's AdamW (`mindspore.experimental.optim.AdamW`, PyTorch's rule:
bias-corrected moments, decoupled weight decay) with DeiT's parameter groups, no weight decay
for norms, biases and the token/position embeddings.

Not mindspore.nn.AdamWeightDecay: that is BERT's variant without bias correction, whose first
updates are up to ~6x larger than PyTorch's (ratio (1 - beta1^t) / sqrt(1 - beta2^t)).
"""
import mindspore as ms
from mindspore import nn, ops
from mindspore.experimental.optim import AdamW

NO_DECAY_NAMES = ("cls_token", "dist_token", "pos_embed")
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8  # timm/DeiT's AdamW eps


def skips_weight_decay(name: str, shape) -> bool:
    """True for 1-d parameters (LayerNorm weights/biases, all biases) and the learned tokens/position embedding."""
    return len(shape) <= 1 or name.endswith(".bias") or name.split(".")[-1] in NO_DECAY_NAMES


def param_groups(params, weight_decay: float):
    """Trainable parameters -> the non-empty groups of [{'params': decayed, 'weight_decay': wd},
    {'params': others, 'weight_decay': 0}]."""
    decay, no_decay = [], []
    for param in params:
        (no_decay if skips_weight_decay(param.name, param.shape) else decay).append(param)
    groups = [{"params": decay, "weight_decay": float(weight_decay)}, {"params": no_decay, "weight_decay": 0.0}]
    return [group for group in groups if group["params"]]


def create_optimizer(net: nn.Cell, weight_decay: float, lr: float = 0.0) -> AdamW:
    """AdamW over net's trainable parameters in DeiT's groups. With a per-step schedule the
    learning rate is set before every update (see StepLearningRate); lr is the starting value."""
    return AdamW(param_groups(net.trainable_params(), weight_decay), lr=lr, betas=ADAM_BETAS, eps=ADAM_EPS,
                 weight_decay=0.0)


def optimizer_state(optimizer: AdamW) -> list:
    """The Parameters that hold the optimizer's progress: both moments of every parameter and the
    step count (which also places a run in its learning-rate schedule). Not max_exp_avg_sq: that is
    AMSGrad's, which DeiT does not use, so it stays zero."""
    return list(optimizer.exp_avg) + list(optimizer.exp_avg_sq) + [optimizer.state_step]


class StepLearningRate(nn.Cell):
    """Sets every group's learning rate to lr_per_step[t] before update t (0-based: the optimizer's
    step count), inside the compiled step; restoring the count restores the schedule position."""

    def __init__(self, optimizer: AdamW, lr_per_step):
        super().__init__(auto_prefix=False)
        self.lr_per_step = ms.Tensor(lr_per_step, ms.float32)
        self.last = self.lr_per_step.shape[0] - 1
        self.step_count = optimizer.state_step
        self.group_lrs = optimizer.lrs

    def construct(self):
        lr = self.lr_per_step[ops.minimum(self.step_count, self.last)]
        for group_lr in self.group_lrs:
            ops.assign(group_lr, lr)
        return lr
