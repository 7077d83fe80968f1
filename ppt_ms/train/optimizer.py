"""AdamW as in PyTorch/timm (bias-corrected moments, decoupled weight decay) with DeiT's parameter
groups: no weight decay for norms, biases and the token/position embeddings.

mindspore.nn.AdamWeightDecay is the BERT variant without bias correction: its first updates are up
to ~6x larger than PyTorch's AdamW (ratio (1 - beta1^t) / sqrt(1 - beta2^t)), which changes a DeiT
fine-tuning recipe; mint.optim.AdamW has no CPU kernel. Hence this small optimizer.
"""
import numpy as np
import mindspore as ms
from mindspore import nn, ops

NO_DECAY_NAMES = ("cls_token", "dist_token", "pos_embed")
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8  # timm/DeiT's AdamW eps

_adamw_update = ops.MultitypeFuncGraph("adamw_update")


@_adamw_update.register("Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor",
                        "Tensor", "Tensor", "Tensor")
def _update(beta1, beta2, eps, lr, bias1, bias2, weight_decay, param, m, v, grad):
    """One parameter:  p <- p * (1 - lr * wd);  m, v <- moving averages of g, g^2;
    p <- p - lr * (m / bias1) / (sqrt(v / bias2) + eps),  bias_i = 1 - beta_i^t."""
    grad = grad.astype(ms.float32)
    next_m = beta1 * m + (1.0 - beta1) * grad
    next_v = beta2 * v + (1.0 - beta2) * ops.square(grad)
    decayed = param.astype(ms.float32) * (1.0 - lr * weight_decay)
    next_param = decayed - lr * (next_m / bias1) / (ops.sqrt(next_v / bias2) + eps)
    next_param = ops.depend(next_param, ops.assign(m, next_m))
    next_param = ops.depend(next_param, ops.assign(v, next_v))
    return ops.depend(next_param, ops.assign(param, next_param.astype(param.dtype)))


class AdamW(nn.Optimizer):
    """PyTorch's AdamW. params: Parameters or groups [{'params': [...], 'weight_decay': wd}];
    learning_rate: a float or a per-step array/Tensor indexed by the optimizer's global_step.
    Moments are Parameters named adam_m.<name> / adam_v.<name>; global_step counts updates."""

    def __init__(self, params, learning_rate, beta1=ADAM_BETAS[0], beta2=ADAM_BETAS[1], eps=ADAM_EPS,
                 weight_decay=0.0):
        super().__init__(learning_rate, params, weight_decay)
        self.beta1 = ms.Tensor(beta1, ms.float32)
        self.beta2 = ms.Tensor(beta2, ms.float32)
        self.eps = ms.Tensor(eps, ms.float32)
        self.moments1 = self._parameters.clone(prefix="adam_m", init="zeros")
        self.moments2 = self._parameters.clone(prefix="adam_v", init="zeros")

    def construct(self, gradients):
        weight_decay = self.get_weight_decay()
        lr = self.get_lr()
        self.assignadd(self.global_step, self.global_step_increase_tensor)
        step = self.global_step.astype(ms.float32).reshape(())
        bias1 = 1.0 - ops.pow(self.beta1, step)
        bias2 = 1.0 - ops.pow(self.beta2, step)
        moments = (self._parameters, self.moments1, self.moments2, gradients)
        if self.is_group:
            return self.hyper_map(ops.partial(_adamw_update, self.beta1, self.beta2, self.eps, lr, bias1, bias2),
                                  weight_decay, *moments)
        return self.hyper_map(ops.partial(_adamw_update, self.beta1, self.beta2, self.eps, lr, bias1, bias2,
                                          weight_decay), *moments)


def skips_weight_decay(name: str, shape) -> bool:
    """True for 1-d parameters (LayerNorm weights/biases, all biases) and the learned tokens/position embedding."""
    return len(shape) <= 1 or name.endswith(".bias") or name.split(".")[-1] in NO_DECAY_NAMES


def param_groups(params, weight_decay: float):
    """Trainable parameters -> [{'params': decayed, 'weight_decay': wd}, {'params': others, 'weight_decay': 0}]."""
    decay, no_decay = [], []
    for param in params:
        (no_decay if skips_weight_decay(param.name, param.shape) else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def create_optimizer(net: nn.Cell, lr_per_step: np.ndarray, weight_decay: float) -> AdamW:
    """AdamW over net's trainable parameters; lr_per_step [total_steps] is indexed by the optimizer's
    own global_step, so restoring that counter restores the schedule position."""
    groups = [g for g in param_groups(net.trainable_params(), weight_decay) if g["params"]]
    return AdamW(groups, learning_rate=ms.Tensor(lr_per_step, ms.float32))
