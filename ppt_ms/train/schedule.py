"""Per-step learning-rate schedule: linear warm-up from warmup_lr, then cosine decay to min_lr.

Not mindspore.nn.warmup_lr / cosine_decay_lr: they change the rate once per epoch, and warm up from 0.
"""
import math

import numpy as np

REFERENCE_BATCH = 512  # train.lr is the learning rate for a global batch of this size (DeiT's rule)


def scaled_lr(base_lr: float, global_batch: int) -> float:
    """DeiT's linear scaling: base_lr * global_batch / 512."""
    return base_lr * global_batch / REFERENCE_BATCH


def lr_schedule(peak_lr: float, min_lr: float, warmup_lr: float, warmup_epochs: int, epochs: int,
                steps_per_epoch: int) -> np.ndarray:
    """Learning rate of every optimizer step: float32 [epochs * steps_per_epoch].

    With W = warmup_epochs * steps_per_epoch warm-up steps and T steps in all, step s uses
      s <  W: warmup_lr + (peak_lr - warmup_lr) * s / W                      (linear warm-up)
      s >= W: min_lr + (peak_lr - min_lr) * (1 + cos(pi * (s - W) / (T - W))) / 2   (cosine)
    so the first step uses warmup_lr (or peak_lr without warm-up) and the last approaches min_lr.
    Unlike timm, which changes the rate once per epoch, this updates it every step.
    """
    if steps_per_epoch < 1 or epochs < 1:
        raise ValueError(f"need epochs >= 1 and steps_per_epoch >= 1, got {epochs} and {steps_per_epoch}")
    if not 0 <= warmup_epochs < epochs:
        raise ValueError(f"train.warmup_epochs ({warmup_epochs}) must be smaller than train.epochs ({epochs})")
    total = epochs * steps_per_epoch
    warmup = warmup_epochs * steps_per_epoch
    steps = np.arange(total, dtype=np.float64)
    ramp = warmup_lr + (peak_lr - warmup_lr) * steps / max(warmup, 1)
    progress = (steps - warmup) / (total - warmup)
    cosine = min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + np.cos(math.pi * progress))
    return np.where(steps < warmup, ramp, cosine).astype(np.float32)
