"""AdamW with DeiT's parameter groups: no weight decay for norms, biases and the token/position embeddings."""
import numpy as np
import mindspore as ms
from mindspore import nn

NO_DECAY_NAMES = ("cls_token", "dist_token", "pos_embed")
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8  # timm/DeiT's AdamW eps (MindSpore's default is 1e-6)


def skips_weight_decay(name: str, shape) -> bool:
    """True for 1-d parameters (LayerNorm weights/biases, all biases) and the learned tokens/position embedding."""
    return len(shape) <= 1 or name.endswith(".bias") or name.split(".")[-1] in NO_DECAY_NAMES


def param_groups(params, weight_decay: float):
    """Trainable parameters -> [{'params': decayed, 'weight_decay': wd}, {'params': others, 'weight_decay': 0}]."""
    decay, no_decay = [], []
    for param in params:
        (no_decay if skips_weight_decay(param.name, param.shape) else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def create_optimizer(net: nn.Cell, lr_per_step: np.ndarray, weight_decay: float) -> nn.AdamWeightDecay:
    """nn.AdamWeightDecay over net's trainable parameters; lr_per_step [total_steps] is indexed by
    the optimizer's own global_step, so restoring that counter restores the schedule position."""
    groups = [g for g in param_groups(net.trainable_params(), weight_decay) if g["params"]]
    return nn.AdamWeightDecay(groups, learning_rate=ms.Tensor(lr_per_step, ms.float32),
                              beta1=ADAM_BETAS[0], beta2=ADAM_BETAS[1], eps=ADAM_EPS)
