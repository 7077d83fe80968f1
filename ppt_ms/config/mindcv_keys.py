"""mindcv's flat config keys and command-line flags, and what they are here.

A mindcv user writes `--amp_level O2` or a flat YAML (`mode: 0`, `model: vit_b_32_224`, `lr: 0.001`).
ppt_ms's configs have sections, so each such key gets one line naming the ppt_ms key to use (or why
there is none) instead of argparse's "unrecognized arguments" or a misleading "did you mean".
They are answered, not translated: several keys mean something slightly different here (lr is
scaled with the global batch, pretrained is a file, not a download), and a silent translation
would hide that.
"""
from .rules import ConfigError

# mindcv key -> (ppt_ms key or None, what to know)
MINDCV_KEYS = {
    "mode": ("system.mode", "graph or pynative, for mindcv's 0 or 1"),
    "device_target": ("system.device_target", ""),
    "amp_level": ("system.amp_level", ""),
    "seed": ("system.seed", ""),
    "distribute": (None, "launch with msrun; the trainer finds its rank itself"),
    "dataset_sink_mode": (None, "ppt_ms feeds batches itself; there is no sink mode to set"),
    "data_dir": ("data.path", "an ImageNet-style folder with train/ and val/"),
    "dataset": (None, "ImageNet-style folders only: set data.path"),
    "dataset_download": (None, "nothing is downloaded: set data.path to a folder"),
    "num_parallel_workers": ("data.num_workers", "auto by default"),
    "train_split": ("data.train_split", ""),
    "val_split": ("data.val_split", ""),
    "batch_size": ("data.batch_size", "per process"),
    "image_resize": ("model.img_size", ""),
    "scale": ("data.scale", ""),
    "ratio": ("data.ratio", ""),
    "hflip": ("data.hflip", ""),
    "auto_augment": ("data.auto_augment", ""),
    "interpolation": ("data.interpolation", ""),
    "crop_pct": ("data.crop_pct", ""),
    "re_prob": ("data.reprob", ""),
    "mixup": ("data.mixup", ""),
    "cutmix": ("data.cutmix", ""),
    "cutmix_prob": ("data.mixup_prob", ""),
    "mean": ("data.mean", "as fractions of 1 (mindcv's are of 255)"),
    "std": ("data.std", "as fractions of 1 (mindcv's are of 255)"),
    "label_smoothing": ("data.label_smoothing", ""),
    "model": ("model.name", "mindcv's ViT names work, e.g. vit_b_16_224"),
    "num_classes": ("model.num_classes", ""),
    "pretrained": ("model.pretrained", "a checkpoint file, not a download switch"),
    "ckpt_path": ("model.pretrained", "or the tool's --ckpt FILE; train.resume to continue a run"),
    "drop_path_rate": ("model.drop_path_rate", ""),
    "epoch_size": ("train.epochs", ""),
    "lr": ("train.lr", "for a global batch of 512, scaled linearly to yours"),
    "min_lr": ("train.min_lr", ""),
    "warmup_epochs": ("train.warmup_epochs", ""),
    "weight_decay": ("train.weight_decay", ""),
    "ema": ("train.ema", ""),
    "ema_decay": ("train.ema_decay", ""),
    "clip_grad": ("train.clip_grad", "the clip value itself (null: off)"),
    "clip_value": ("train.clip_grad", ""),
    "ckpt_save_dir": ("train.output_dir", ""),
    "keep_checkpoint_max": ("train.keep_last", ""),
    "ckpt_save_interval": ("train.save_every_epochs", ""),
    "val_while_train": ("train.val_every_epochs", "validation every N epochs (0: after the last only)"),
    "val_interval": ("train.val_every_epochs", ""),
    "log_interval": ("train.log_every_steps", ""),
    "resume_opt": ("train.resume", "a training checkpoint of tools/train.py"),
    "opt": (None, "the optimizer is AdamW"),
    "scheduler": (None, "the schedule is linear warmup then cosine"),
    "loss": (None, "the loss is cross-entropy on soft targets"),
    "loss_scale": (None, "set by the AMP level"),
    "loss_scale_type": (None, "set by the AMP level"),
    "momentum": (None, "the optimizer is AdamW"),
    "filter_bias_and_bn": (None, "biases, norms, tokens and position embeddings never decay"),
    "drop_rate": (None, "ViTs here have no dropout"),
}


def equivalent(key: str) -> str:
    """'amp_level -> system.amp_level' with what to know, or 'opt: no equivalent (why)'."""
    target, note = MINDCV_KEYS[key]
    if target is None:
        return "%s: no equivalent (%s)" % (key, note)
    return "%s -> %s%s" % (key, target, ": " + note if note else "")


def mindcv_flags_error(flags) -> ConfigError:
    """The one-line error for mindcv command-line flags such as --amp_level."""
    return ConfigError("mindcv's flag%s: %s; ppt_ms takes --SECTION.KEY VALUE (see --help)" % (
        "s" if len(flags) > 1 else "", "; ".join("--" + equivalent(flag) for flag in flags)))


def mindcv_keys_error(keys) -> ConfigError:
    """The one message for a flat mindcv YAML: every key's equivalent."""
    return ConfigError("this is a flat mindcv config; ppt_ms configs have sections (model:, data:, train:, "
                       "system:, ...; see configs/). Its keys here: %s" % "; ".join(equivalent(k) for k in keys))


def flat_mindcv_keys(data) -> list:
    """The top-level keys of a config mapping that are mindcv's flat keys (model: NAME, not model: {...})."""
    from .schema import SCHEMA
    return [key for key, value in data.items()
            if key in MINDCV_KEYS and (key not in SCHEMA or not isinstance(value, dict))]
