"""Every config key with its default and rule, and the checks across keys.

SCHEMA is section -> key -> (default, rule); DEFAULTS is derived from it.
"""
import copy
from collections.abc import Mapping

from ..token_reduction.settings import DEFAULTS as TOKEN_REDUCTION, METHODS, check_combination
from .rules import (Auto, Bool, Choice, ConfigError, Float, Int, IntOrIntList, ListOf, Nullable, Str, suggestion)
from .mindcv_keys import flat_mindcv_keys, mindcv_keys_error
from .yaml_io import parse_yaml

FUSED = "-fused"  # benchmark variant suffix: the method with token_reduction.fused_cpu_kernel on
FORMULATION_KEYS = ("fused_cpu_kernel",)  # token_reduction keys that choose a form (formulations.prepare), not the model
BENCHMARK_VARIANTS = METHODS + ("tome" + FUSED, "ppt" + FUSED)

_PROBABILITY = Float(0.0, 1.0)
_NONNEG = Float(0.0)
_PATH = Nullable(Str())

# section -> key -> (default, rule). DEFAULTS below is derived from this table.
SCHEMA = {
    "model": {
        "name": ("deit_small_patch16_224", Str()),
        "num_classes": (None, Nullable(Int(0))),  # null: the model's own (timm's default); 0: no classifier
        "img_size": (224, Int(1)),
        "drop_path_rate": (0.0, Float(0.0, 1.0, high_open=True)),
        "pretrained": (None, _PATH),
        "use_ema": (False, Bool()),  # take the EMA copy of a training checkpoint's weights (else the live ones)
        "cpu_kernels": (True, Bool()),  # CPU, float32: GELU, LayerNorm, layouts (+ backward) as C++ kernels (formulations)
    },
    "token_reduction": {
        "method": (TOKEN_REDUCTION["method"], Choice(*METHODS)),
        "r": (TOKEN_REDUCTION["r"], IntOrIntList(0)),
        "layers": (TOKEN_REDUCTION["layers"], ListOf(Int(0), order="strict")),
        "threshold": (TOKEN_REDUCTION["threshold"], Float(0.0, allow_inf=True)),
        "inflection": (TOKEN_REDUCTION["inflection"], Nullable(Float())),
        "prop_attn": (TOKEN_REDUCTION["prop_attn"], Bool()),
        "trace_source": (TOKEN_REDUCTION["trace_source"], Bool()),
        "fused_cpu_kernel": (False, Bool()),  # CPU inference, float32: the reduction step as one C++ kernel
    },
    "data": {
        "path": (None, _PATH),
        "train_split": ("train", Str()),
        "val_split": ("val", Str()),
        "verify_images": (False, Bool()),  # decode every file once while scanning; skip unreadable ones
        "batch_size": (64, Int(1)),
        "num_workers": ("auto", Auto(Int(1))),  # auto: the cores this process may use, at most 8 (data_workers)
        "crop_pct": (0.875, Float(0.0, 1.0, low_open=True)),
        "interpolation": ("bicubic", Choice("bicubic", "bilinear")),
        "mean": ([0.485, 0.456, 0.406], ListOf(Float(), length=3)),
        "std": ([0.229, 0.224, 0.225], ListOf(Float(0.0, low_open=True), length=3)),
        "hflip": (0.5, _PROBABILITY),
        "scale": ([0.08, 1.0], ListOf(Float(0.0, 1.0, low_open=True), length=2, order="low-high")),
        "ratio": ([0.75, 1.3333333], ListOf(Float(0.0, low_open=True), length=2, order="low-high")),
        "auto_augment": ("rand-m9-mstd0.5", Nullable(Str())),
        "reprob": (0.25, _PROBABILITY),
        "mixup": (0.8, _NONNEG),
        "cutmix": (1.0, _NONNEG),
        "mixup_prob": (1.0, _PROBABILITY),
        "mixup_switch_prob": (0.5, _PROBABILITY),
        "label_smoothing": (0.1, Float(0.0, 1.0, high_open=True)),
    },
    "train": {
        "epochs": (30, Int(1)),
        "lr": (5.0e-4, Float(0.0, low_open=True)),
        "min_lr": (1.0e-5, _NONNEG),
        "warmup_epochs": (5, Int(0)),
        "warmup_lr": (1.0e-6, _NONNEG),
        "weight_decay": (0.05, _NONNEG),
        "clip_grad": (None, Nullable(Float(0.0, low_open=True))),
        "ema": (False, Bool()),
        "ema_decay": (0.99996, Float(0.0, 1.0, low_open=True, high_open=True)),
        "output_dir": ("output", Str()),
        "save_every_epochs": (1, Int(0)),  # 0: only when the run ends
        "val_every_epochs": (1, Int(0)),  # evaluate on the val split every N epochs and after the last; 0: last only
        "save_every_steps": (0, Int(0)),
        "keep_last": (3, Int(1)),
        "log_every_steps": (20, Int(1)),
        "resume": (None, _PATH),
        "finetune": (None, _PATH),
    },
    "eval": {
        "batch_size": (None, Nullable(Int(1))),  # null: data.batch_size (eval_batch_size)
        "ckpt": (None, _PATH),
    },
    "export": {
        "file_format": ("MINDIR", Choice("MINDIR", "ONNX", "AIR")),
        "batch_size": (1, Int(1)),
        "file": (None, _PATH),
        # null: a dynamic batch dimension where the format allows it (MindIR), fixed otherwise;
        # true: dynamic or an error; false: fixed at export.batch_size
        "dynamic_batch": (None, Nullable(Bool())),
    },
    "benchmark": {
        "batch_sizes": ([1, 64], ListOf(Int(1), min_length=1)),
        "compare": (["none", "tome", "ppt"], ListOf(Choice(*BENCHMARK_VARIANTS), min_length=1, unique=True)),
        "warmup": (3, Int(0)),
        "repeats": (10, Int(1)),
        "training": (False, Bool()),  # time a training step (forward, backward, AdamW) instead of inference
        "isolate": (False, Bool()),  # each variant in its own process: memory per variant, unpaired ratios
        "data_pipeline": (False, Bool()),  # time the eval data pipeline (data.path's val split), no model
        "runtime": ("mindspore", Choice("mindspore", "onnxruntime")),  # onnxruntime: time exported ONNX files
    },
    "budget": {  # tools/calibrate.py: what the calibrated schedule must meet (at least one of macs, speedup)
        "macs": (None, Nullable(Float(0.0, 1.0, low_open=True))),  # a fraction of the unreduced model's MACs
        "speedup": (None, Nullable(Float(1.0, low_open=True))),  # measured side by side at budget.batch_size
        "batch_size": (64, Int(1)),
    },
    "system": {
        "device_target": ("CPU", Choice("CPU", "GPU", "Ascend")),
        "mode": ("graph", Choice("graph", "pynative")),
        "seed": (0, Int(0)),
        "amp_level": ("O0", Choice("O0", "O1", "O2", "O3")),  # MindSpore's auto mixed precision (train, eval, benchmark)
        "amp_dtype": ("float16", Choice("float16", "bfloat16")),
    },
}

DEFAULTS = {section: {key: copy.deepcopy(default) for key, (default, _) in keys.items()}
            for section, keys in SCHEMA.items()}


def _check_section(section):
    if section not in SCHEMA:
        raise ConfigError(f"unknown config section '{section}'{suggestion(section, SCHEMA)}; "
                          f"valid sections: {', '.join(SCHEMA)}")


def _check_known(section, key):
    """Raise ConfigError unless ``section.key`` is in the schema."""
    _check_section(section)
    if key not in SCHEMA[section]:
        keys = SCHEMA[section]
        close = suggestion(key, keys).replace("'", f"'{section}.", 1)
        raise ConfigError(f"unknown config key '{section}.{key}'{close}; "
                          f"valid keys in '{section}': {', '.join(keys)}")


def split_key(dotted):
    """'section.key' -> (section, key), checked against the schema."""
    parts = str(dotted).strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"config key '{dotted}' must have the form section.key; "
                          f"valid sections: {', '.join(SCHEMA)}")
    _check_known(*parts)
    return parts[0], parts[1]


def as_override(item):
    """'section.key=value' (value read as YAML) or a (key, value) pair -> (key, value)."""
    if isinstance(item, tuple) and len(item) == 2:
        return item
    if not isinstance(item, str) or "=" not in item:
        raise ConfigError(f"override {item!r} must look like section.key=value, "
                          "e.g. token_reduction.r=50")
    key, raw = item.split("=", 1)
    return key.strip(), parse_yaml(raw, f"the value of override {item!r}")


def merge(tree, data):
    """Copy every section.key of the mapping ``data`` into ``tree`` (checked keys only)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"a config must be a mapping of sections ({', '.join(SCHEMA)}), "
                          f"got {data!r}")
    flat = flat_mindcv_keys(data)
    if flat:
        raise mindcv_keys_error(flat)
    for section, values in data.items():
        _check_section(section)
        if values is None:
            continue
        if not isinstance(values, Mapping):
            raise ConfigError(f"config section '{section}' must be a mapping of keys to values, "
                              f"got {values!r}")
        for key, value in values.items():
            _check_known(section, key)
            tree[section][key] = copy.deepcopy(value)


def _check_token_reduction(tr):
    try:
        check_combination(tr)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _check_train(train):
    if train["resume"] is not None and train["finetune"] is not None:
        raise ConfigError(
            f"config keys 'train.resume' ({train['resume']!r}) and 'train.finetune' "
            f"({train['finetune']!r}) are both set; set at most one of them")


def _check_benchmark(bench):
    if bench["runtime"] != "onnxruntime":
        return
    if bench["training"]:
        raise ConfigError("config key 'benchmark.runtime': onnxruntime runs exported inference files; "
                          "benchmark.training needs runtime mindspore")
    fused = [name for name in bench["compare"] if name.endswith(FUSED)]
    if fused:
        raise ConfigError(f"config key 'benchmark.compare': {', '.join(fused)} run the fused CPU kernel, "
                          "which an ONNX file cannot carry; with benchmark.runtime onnxruntime compare "
                          "the plain methods")


def eval_batch_size(cfg) -> int:
    """The batch size of evaluation, embedding and sweeps: eval.batch_size, or data.batch_size when it is null."""
    return cfg["eval"]["batch_size"] or cfg["data"]["batch_size"]


def validate(tree):
    for section, keys in SCHEMA.items():
        for key, (_, rule) in keys.items():
            tree[section][key] = rule.check(f"{section}.{key}", tree[section][key])
    if tree["model"]["num_classes"] is None:
        from ..models import default_num_classes  # the models import the config's token_reduction rules
        tree["model"]["num_classes"] = default_num_classes(tree["model"]["name"])
    _check_token_reduction(tree["token_reduction"])
    _check_train(tree["train"])
    _check_benchmark(tree["benchmark"])
    return tree
