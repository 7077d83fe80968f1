"""The classification loss: MindSpore's cross-entropy, for the labels the data pipeline gives."""
from mindspore import nn


def create_loss(soft_targets: bool, label_smoothing: float = 0.0) -> nn.Cell:
    """(logits [B, K], labels) -> mean cross-entropy. Soft targets [B, K] already hold mixup/cutmix
    and smoothing; int class ids [B] are smoothed here (label_smoothing / K spread over all classes)."""
    return nn.CrossEntropyLoss(label_smoothing=0.0 if soft_targets else label_smoothing)
