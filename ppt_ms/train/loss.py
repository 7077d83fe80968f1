"""Classification losses: soft-target cross-entropy for mixup/smoothed targets, else cross-entropy."""
import mindspore as ms
from mindspore import nn, ops


class SoftTargetCrossEntropy(nn.Cell):
    """mean over the batch of sum_k -target[b, k] * log_softmax(logits)[b, k].

    logits [B, K], targets [B, K] (rows sum to 1) -> scalar float32.
    """

    def construct(self, logits, targets):
        log_probs = ops.log_softmax(logits.astype(ms.float32), axis=-1)
        return (-targets.astype(ms.float32) * log_probs).sum(axis=-1).mean()


class HardTargetCrossEntropy(nn.Cell):
    """Cross-entropy with optional label smoothing for int class ids: logits [B, K], labels [B] -> scalar."""

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.loss = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def construct(self, logits, labels):
        return self.loss(logits.astype(ms.float32), labels.astype(ms.int32))


def create_loss(soft_targets: bool, label_smoothing: float = 0.0) -> nn.Cell:
    """The training loss for the labels the data pipeline gives: soft targets [B, K]
    (mixup/cutmix or smoothing already folded in) or int ids [B] (smoothed here)."""
    if soft_targets:
        return SoftTargetCrossEntropy()
    return HardTargetCrossEntropy(label_smoothing)
