"""Batch-level Mixup / CutMix with label smoothing, following timm's ``Mixup`` in 'batch' mode.

MindSpore's MixUpBatch / CutMixBatch cannot express timm's mixup_prob / switch_prob choice
or the CutMix area correction, so this is a small NumPy op run in a batch ``map``.

Per batch: with probability ``prob`` the batch is mixed, else lam = 1. When both alphas are
positive, CutMix is chosen with probability ``switch_prob``, otherwise Mixup; lam ~ Beta(alpha, alpha)
of the chosen method. Every image i is mixed with image B-1-i (the batch flipped):
  Mixup:  x_i <- lam * x_i + (1 - lam) * x_{B-1-i}
  CutMix: a random box of x_i is replaced by the same box of x_{B-1-i}; lam becomes the
          exact fraction of x_i that is kept (box clipped to the image).
Targets: smooth(y_i) * lam + smooth(y_{B-1-i}) * (1 - lam), where smooth puts
1 - smoothing + smoothing / K on the class and smoothing / K elsewhere. Rows sum to 1.
"""
import numpy as np


def smoothed_one_hot(labels, num_classes, smoothing):
    """[B] int -> [B, K] float32 with 1 - smoothing + smoothing/K on the label, smoothing/K elsewhere."""
    off_value = smoothing / num_classes
    targets = np.full((len(labels), num_classes), off_value, dtype=np.float32)
    targets[np.arange(len(labels)), labels] = 1.0 - smoothing + off_value
    return targets


def cutmix_box(height, width, lam, rng):
    """Random box covering about (1 - lam) of the image, clipped to it: (top, bottom, left, right)."""
    cut_ratio = np.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * cut_ratio), int(width * cut_ratio)
    center_y, center_x = rng.integers(0, height), rng.integers(0, width)
    top, bottom = np.clip([center_y - cut_h // 2, center_y + cut_h // 2], 0, height)
    left, right = np.clip([center_x - cut_w // 2, center_x + cut_w // 2], 0, width)
    return int(top), int(bottom), int(left), int(right)


class BatchMixup:
    """Callable for ``dataset.map(input_columns=['image', 'label'])`` after ``batch``.

    images [B, C, H, W] float32, labels [B] int -> (mixed images [B, C, H, W] float32, targets [B, K] float32).
    """

    def __init__(self, num_classes, mixup_alpha, cutmix_alpha, prob, switch_prob, label_smoothing, seed=0):
        if mixup_alpha < 0 or cutmix_alpha < 0 or mixup_alpha + cutmix_alpha == 0:
            raise ValueError(f'mixup and cutmix alphas must be >= 0 and not both 0, got {mixup_alpha}, {cutmix_alpha}')
        for name, value in (('mixup_prob', prob), ('mixup_switch_prob', switch_prob)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f'{name} must be in [0, 1], got {value}')
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f'label_smoothing must be in [0, 1), got {label_smoothing}')
        self.num_classes = num_classes
        self.mixup_alpha = mixup_alpha
        self.cutmix_alpha = cutmix_alpha
        self.prob = prob
        self.switch_prob = switch_prob
        self.label_smoothing = label_smoothing
        self.rng = np.random.default_rng(seed)

    def _draw_method(self):
        """(lam, use_cutmix) for one batch."""
        if self.rng.random() >= self.prob:
            return 1.0, False
        if self.mixup_alpha > 0 and self.cutmix_alpha > 0:
            use_cutmix = bool(self.rng.random() < self.switch_prob)
        else:
            use_cutmix = self.cutmix_alpha > 0
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        return float(self.rng.beta(alpha, alpha)), use_cutmix

    def __call__(self, images, labels):
        images = np.array(images, dtype=np.float32)  # a writable copy
        labels = np.asarray(labels).astype(np.int64)
        lam, use_cutmix = self._draw_method()
        partners = images[::-1].copy()
        if use_cutmix:
            height, width = images.shape[2:]
            top, bottom, left, right = cutmix_box(height, width, lam, self.rng)
            images[:, :, top:bottom, left:right] = partners[:, :, top:bottom, left:right]
            lam = 1.0 - (bottom - top) * (right - left) / (height * width)
        elif lam < 1.0:
            images = lam * images + (1.0 - lam) * partners
        targets = smoothed_one_hot(labels, self.num_classes, self.label_smoothing)
        mixed_targets = lam * targets + (1.0 - lam) * targets[::-1]
        return images.astype(np.float32), mixed_targets.astype(np.float32)
