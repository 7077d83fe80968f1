"""Configuration: defaults, YAML files, command-line overrides and validation.

A config is a two-level tree ``section.key -> value``. ``DEFAULTS`` lists every
valid key with its default; a YAML file and overrides may set any subset of
them. Every value is checked against its rule when the config is built, so a
typo, a wrong type or an impossible value fails at start-up with a
``ConfigError`` naming the key, the bad value and what is allowed.

Sources, later ones winning: DEFAULTS, the YAML file, then overrides in order.
Overrides are ``"section.key=value"`` strings whose value is read as YAML
(``r=50`` is an int, ``layers=[3,6,9]`` a list, ``threshold=7e-5`` a float,
``pretrained=null`` is None).

Checks that need the model (a layer index beyond the depth, r removing more
tokens than exist, an unregistered model name) belong to the model code.
"""
import argparse
import copy
import difflib
import math
import os
import re
from collections.abc import Mapping

import yaml

from .errors import PPTMSError
from .token_reduction.settings import DEFAULTS as TOKEN_REDUCTION, METHODS, check_combination

FUSED = "-fused"  # benchmark variant suffix: the method with token_reduction.fused_cpu_kernel on
BENCHMARK_VARIANTS = METHODS + ("tome" + FUSED, "ppt" + FUSED)


class ConfigError(PPTMSError, ValueError):
    """A config file, override or value that cannot be used."""


# ----------------------------------------------------------------------------
# YAML reading
# ----------------------------------------------------------------------------

class _YamlLoader(yaml.SafeLoader):
    """Safe YAML loader that reads ``7e-5`` as a float and rejects duplicate keys.

    YAML 1.1 (PyYAML) only treats ``7.0e-5`` as a float and reads ``7e-5`` as
    the string "7e-5"; a repeated key would silently keep the last value.
    """

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    f"found duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def _parse_yaml(text, source):
    try:
        return yaml.load(text, Loader=_YamlLoader)
    except yaml.YAMLError as err:
        raise ConfigError(f"cannot parse {source} as YAML: {err}") from None


# ----------------------------------------------------------------------------
# Value rules: each checks one value and returns it normalised
# ----------------------------------------------------------------------------

def _reject(key, value, expected):
    hint = ""
    if isinstance(value, (bool, int, float)) and "string" in expected:
        hint = " (quote it in YAML to pass it as a string)"
    raise ConfigError(f"config key '{key}': expected {expected}, "
                      f"got {value!r} ({type(value).__name__}){hint}")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _suggestion(word, options):
    """' (did you mean 'x'?)' for the closest option, or ''."""
    word = str(word)
    same_case = [o for o in options if o.lower() == word.lower()]
    close = same_case or difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


class _Int:
    def __init__(self, minimum=None):
        self.minimum = minimum
        self.expected = "an int" if minimum is None else f"an int >= {minimum}"

    def check(self, key, value):
        if not _is_int(value) or (self.minimum is not None and value < self.minimum):
            _reject(key, value, self.expected)
        return value


class _Float:
    """A finite float within optional bounds; ints are widened to float."""

    def __init__(self, low=None, high=None, low_open=False, high_open=False, allow_inf=False):
        self.low, self.high = low, high
        self.low_open, self.high_open = low_open, high_open
        self.allow_inf = allow_inf
        if low is not None and high is not None:
            self.expected = (f"a float in {'(' if low_open else '['}{low}, "
                             f"{high}{')' if high_open else ']'}")
        elif low is not None:
            self.expected = f"a float {'>' if low_open else '>='} {low}"
        else:
            self.expected = "a float"

    def check(self, key, value):
        if not (_is_int(value) or isinstance(value, float)):
            _reject(key, value, self.expected)
        number = float(value)
        too_low = self.low is not None and (number <= self.low if self.low_open else number < self.low)
        too_high = self.high is not None and (number >= self.high if self.high_open else number > self.high)
        not_finite = math.isnan(number) or (math.isinf(number) and not self.allow_inf)
        if too_low or too_high or not_finite:
            _reject(key, value, self.expected)
        return number


class _Str:
    expected = "a non-empty string"

    def check(self, key, value):
        if not isinstance(value, str) or not value:
            _reject(key, value, self.expected)
        return value


class _Bool:
    expected = "true or false"

    def check(self, key, value):
        if not isinstance(value, bool):
            _reject(key, value, self.expected)
        return value


class _Choice:
    def __init__(self, *choices):
        self.choices = choices
        self.expected = "one of " + ", ".join(choices)

    def check(self, key, value):
        if not isinstance(value, str) or value not in self.choices:
            raise ConfigError(
                f"config key '{key}': got {value!r}; allowed values: "
                f"{', '.join(self.choices)}{_suggestion(value, self.choices)}")
        return value


class _Nullable:
    def __init__(self, rule):
        self.rule = rule
        self.expected = f"{rule.expected} or null"

    def check(self, key, value):
        if value is None:
            return None
        try:
            return self.rule.check(key, value)
        except ConfigError:
            _reject(key, value, self.expected)


class _List:
    """A list whose items each follow ``item``, with optional shape and order constraints.

    order: None, "strict" (strictly increasing) or "low-high" (non-decreasing pair).
    """

    def __init__(self, item, length=None, min_length=0, order=None, unique=False):
        self.item, self.length, self.min_length = item, length, min_length
        self.order, self.unique = order, unique
        size = (f" of {length} items" if length else
                f" of at least {min_length} item{'s' if min_length > 1 else ''}" if min_length else "")
        extra = {"strict": ", strictly increasing", "low-high": ", as (low, high) with low <= high",
                 None: ""}[order]
        self.expected = (f"a list{size}, each item {item.expected}{extra}"
                         f"{', without repeats' if unique else ''}")

    def check(self, key, value):
        if not isinstance(value, (list, tuple)):
            _reject(key, value, self.expected)
        items = [self.item.check(f"{key}[{i}]", v) for i, v in enumerate(value)]
        pairs = list(zip(items, items[1:]))
        bad = ((self.length is not None and len(items) != self.length)
               or len(items) < self.min_length
               or (self.order == "strict" and any(a >= b for a, b in pairs))
               or (self.order == "low-high" and any(a > b for a, b in pairs))
               or (self.unique and len(set(items)) != len(items)))
        if bad:
            _reject(key, list(value), self.expected)
        return items


class _IntOrIntList:
    def __init__(self, minimum):
        self.one = _Int(minimum)
        self.many = _List(self.one)
        self.expected = f"{self.one.expected} or {self.many.expected}"

    def check(self, key, value):
        if isinstance(value, (list, tuple)):
            return self.many.check(key, value)
        if not _is_int(value) or value < self.one.minimum:
            _reject(key, value, self.expected)
        return value


_PROBABILITY = _Float(0.0, 1.0)
_NONNEG = _Float(0.0)
_PATH = _Nullable(_Str())

# section -> key -> (default, rule). DEFAULTS below is derived from this table.
_SCHEMA = {
    "model": {
        "name": ("deit_small_patch16_224", _Str()),
        "num_classes": (1000, _Int(1)),
        "img_size": (224, _Int(1)),
        "drop_path_rate": (0.0, _Float(0.0, 1.0, high_open=True)),
        "pretrained": (None, _PATH),
        "cpu_kernels": (True, _Bool()),  # CPU inference: GELU and LayerNorm as C++ kernels (models/cpu_layers)
    },
    "token_reduction": {
        "method": (TOKEN_REDUCTION["method"], _Choice(*METHODS)),
        "r": (TOKEN_REDUCTION["r"], _IntOrIntList(0)),
        "layers": (TOKEN_REDUCTION["layers"], _List(_Int(0), order="strict")),
        "threshold": (TOKEN_REDUCTION["threshold"], _Float(0.0, allow_inf=True)),
        "inflection": (TOKEN_REDUCTION["inflection"], _Nullable(_Float())),
        "prop_attn": (TOKEN_REDUCTION["prop_attn"], _Bool()),
        "trace_source": (TOKEN_REDUCTION["trace_source"], _Bool()),
        "fused_cpu_kernel": (TOKEN_REDUCTION["fused_cpu_kernel"], _Bool()),
    },
    "data": {
        "path": (None, _PATH),
        "train_split": ("train", _Str()),
        "val_split": ("val", _Str()),
        "verify_images": (False, _Bool()),  # decode every file once while scanning; skip unreadable ones
        "batch_size": (64, _Int(1)),
        "num_workers": (4, _Int(1)),
        "crop_pct": (0.875, _Float(0.0, 1.0, low_open=True)),
        "interpolation": ("bicubic", _Choice("bicubic", "bilinear")),
        "mean": ([0.485, 0.456, 0.406], _List(_Float(), length=3)),
        "std": ([0.229, 0.224, 0.225], _List(_Float(0.0, low_open=True), length=3)),
        "hflip": (0.5, _PROBABILITY),
        "scale": ([0.08, 1.0], _List(_Float(0.0, 1.0, low_open=True), length=2, order="low-high")),
        "ratio": ([0.75, 1.3333333], _List(_Float(0.0, low_open=True), length=2, order="low-high")),
        "auto_augment": ("rand-m9-mstd0.5", _Nullable(_Str())),
        "reprob": (0.25, _PROBABILITY),
        "mixup": (0.8, _NONNEG),
        "cutmix": (1.0, _NONNEG),
        "mixup_prob": (1.0, _PROBABILITY),
        "mixup_switch_prob": (0.5, _PROBABILITY),
        "label_smoothing": (0.1, _Float(0.0, 1.0, high_open=True)),
    },
    "train": {
        "epochs": (30, _Int(1)),
        "lr": (5.0e-4, _Float(0.0, low_open=True)),
        "min_lr": (1.0e-5, _NONNEG),
        "warmup_epochs": (5, _Int(0)),
        "warmup_lr": (1.0e-6, _NONNEG),
        "weight_decay": (0.05, _NONNEG),
        "clip_grad": (None, _Nullable(_Float(0.0, low_open=True))),
        "ema": (False, _Bool()),
        "ema_decay": (0.99996, _Float(0.0, 1.0, low_open=True, high_open=True)),
        "output_dir": ("output", _Str()),
        "save_every_epochs": (1, _Int(0)),
        "save_every_steps": (0, _Int(0)),
        "keep_last": (3, _Int(1)),
        "log_every_steps": (20, _Int(1)),
        "resume": (None, _PATH),
        "finetune": (None, _PATH),
    },
    "eval": {
        "batch_size": (64, _Int(1)),
        "ckpt": (None, _PATH),
    },
    "export": {
        "file_format": ("MINDIR", _Choice("MINDIR", "ONNX", "AIR")),
        "batch_size": (1, _Int(1)),
        "file": (None, _PATH),
        # null: a dynamic batch dimension where the format allows it (MindIR), fixed otherwise;
        # true: dynamic or an error; false: fixed at export.batch_size
        "dynamic_batch": (None, _Nullable(_Bool())),
    },
    "benchmark": {
        "batch_sizes": ([1, 64], _List(_Int(1), min_length=1)),
        "compare": (["none", "tome", "ppt"], _List(_Choice(*BENCHMARK_VARIANTS), min_length=1, unique=True)),
        "warmup": (3, _Int(0)),
        "repeats": (10, _Int(1)),
        "training": (False, _Bool()),  # time a training step (forward, backward, AdamW) instead of inference
        "isolate": (False, _Bool()),  # each variant in its own process: memory per variant, unpaired ratios
        "runtime": ("mindspore", _Choice("mindspore", "onnxruntime")),  # onnxruntime: time exported ONNX files
    },
    "system": {
        "device_target": ("CPU", _Choice("CPU", "GPU", "Ascend")),
        "mode": ("graph", _Choice("graph", "pynative")),
        "seed": (0, _Int(0)),
        "amp_level": ("O0", _Choice("O0", "O1", "O2", "O3")),
    },
}

DEFAULTS = {section: {key: copy.deepcopy(default) for key, (default, _) in keys.items()}
            for section, keys in _SCHEMA.items()}


# ----------------------------------------------------------------------------
# Keys, overrides and cross-key checks
# ----------------------------------------------------------------------------

def _check_section(section):
    if section not in _SCHEMA:
        raise ConfigError(f"unknown config section '{section}'{_suggestion(section, _SCHEMA)}; "
                          f"valid sections: {', '.join(_SCHEMA)}")


def _check_known(section, key):
    """Raise ConfigError unless ``section.key`` is in the schema."""
    _check_section(section)
    if key not in _SCHEMA[section]:
        keys = _SCHEMA[section]
        close = _suggestion(key, keys).replace("'", f"'{section}.", 1)
        raise ConfigError(f"unknown config key '{section}.{key}'{close}; "
                          f"valid keys in '{section}': {', '.join(keys)}")


def _split_key(dotted):
    """'section.key' -> (section, key), checked against the schema."""
    parts = str(dotted).strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"config key '{dotted}' must have the form section.key; "
                          f"valid sections: {', '.join(_SCHEMA)}")
    _check_known(*parts)
    return parts[0], parts[1]


def _as_override(item):
    """'section.key=value' (value read as YAML) or a (key, value) pair -> (key, value)."""
    if isinstance(item, tuple) and len(item) == 2:
        return item
    if not isinstance(item, str) or "=" not in item:
        raise ConfigError(f"override {item!r} must look like section.key=value, "
                          "e.g. token_reduction.r=50")
    key, raw = item.split("=", 1)
    return key.strip(), _parse_yaml(raw, f"the value of override {item!r}")


def _merge(tree, data):
    """Copy every section.key of the mapping ``data`` into ``tree`` (checked keys only)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"a config must be a mapping of sections ({', '.join(_SCHEMA)}), "
                          f"got {data!r}")
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


def _validate(tree):
    for section, keys in _SCHEMA.items():
        for key, (_, rule) in keys.items():
            tree[section][key] = rule.check(f"{section}.{key}", tree[section][key])
    _check_token_reduction(tree["token_reduction"])
    _check_train(tree["train"])
    _check_benchmark(tree["benchmark"])
    return tree


# ----------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------

class Config(Mapping):
    """A validated, read-only config: ``cfg.token_reduction.r`` or ``cfg["token_reduction"]["r"]``.

    Build one with ``load_config`` or ``make_config``; to change a value build a
    new one: ``make_config(cfg.to_dict(), ["train.epochs=1"])``.
    """

    __slots__ = ("_values", "_name")

    def __init__(self, values, name=""):
        nested = {k: Config(v, f"{name}{k}.") if isinstance(v, dict) else v
                  for k, v in values.items()}
        object.__setattr__(self, "_values", nested)
        object.__setattr__(self, "_name", name)

    def __getitem__(self, key):
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    def __getattr__(self, key):
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(f"config has no key '{self._name}{key}'"
                                 f"{_suggestion(key, self._values)}; valid keys: "
                                 f"{', '.join(self._values)}") from None

    def __setattr__(self, key, value):
        raise AttributeError(f"Config is read-only; to change '{self._name}{key}' build a new one "
                             "with make_config(cfg.to_dict(), ['section.key=value'])")

    def __reduce__(self):
        return Config, (self.to_dict(), self._name)

    def to_dict(self):
        """A plain nested dict copy (changing it does not change the config)."""
        return {k: v.to_dict() if isinstance(v, Config) else copy.deepcopy(v)
                for k, v in self._values.items()}

    def __repr__(self):
        return f"Config({self.to_dict()!r})"


def make_config(data=None, overrides=(), source=None):
    """Merge the mapping ``data`` and then ``overrides`` over DEFAULTS; validate; return a Config.

    overrides: "section.key=value" strings (value read as YAML) or (key, value) pairs.
    source: where ``data`` came from, named in errors about its structure.
    """
    tree = copy.deepcopy(DEFAULTS)
    try:
        _merge(tree, {} if data is None else data)
    except ConfigError as err:
        if source is None:
            raise
        raise ConfigError(f"{source}: {err}") from None
    for item in overrides:
        key, value = _as_override(item)
        section, name = _split_key(key)
        tree[section][name] = value
    return Config(_validate(tree))


def load_config(path=None, overrides=()):
    """Read the YAML file ``path`` (None: defaults only), apply ``overrides``, validate.

    Raises ConfigError for a missing/unreadable/unparseable file, unknown keys and bad values.
    """
    data = None
    if path is not None:
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as err:
            raise ConfigError(f"cannot read config file '{path}': {err.strerror}") from None
        data = _parse_yaml(text, f"config file '{path}'")
    return make_config(data, overrides, source=f"config file '{path}'")


def dump_config(cfg, path):
    """Write ``cfg`` as YAML to ``path`` (parent folders are created); load_config reads it back."""
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(cfg.to_dict(), handle, sort_keys=False, default_flow_style=None)


_OVERRIDES = "_config_overrides"


class _Override(argparse.Action):
    """Collects --set and --section.key values, in command-line order, as (key, value) pairs."""

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string == "--set":
            pair = _as_override(values)
        else:
            tokens = [_parse_yaml(v, f"the value of {option_string}") for v in values]
            pair = (option_string[2:], tokens[0] if len(tokens) == 1 else tokens)
        setattr(namespace, self.dest, (getattr(namespace, self.dest) or []) + [pair])


class _ListOverride(_Override):
    """A --section.key flag of a list key: one value (not itself a list) is a one-item list."""

    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, values, option_string)
        key, value = getattr(namespace, self.dest)[-1]
        if not isinstance(value, list):
            getattr(namespace, self.dest)[-1] = (key, [value])


def parse_cli(argv=None, description=None, extra=None):
    """Parse a tool's command line into ``(Config, argparse.Namespace)``.

    Understood: ``--config FILE``, any number of ``--set section.key=value`` and a
    ``--section.key VALUE`` flag for every schema key (list keys also take
    several values: ``--token_reduction.layers 3 6 9``). Overrides apply in
    command-line order after the file. ``extra(parser)``, if given, adds the
    tool's own arguments; their values are in the returned namespace, next to
    ``config`` (the file path or None). Problems exit with status 2 and a
    message on stderr, as argparse does.
    """
    tool = argparse.ArgumentParser(allow_abbrev=False)
    tool.add_argument("--config", metavar="FILE", help="YAML config; keys it does not set keep "
                      "their defaults")
    tool.add_argument("--set", metavar="SECTION.KEY=VALUE", action=_Override, dest=_OVERRIDES,
                      help="override one config key; VALUE is read as YAML (repeatable)")
    if extra is not None:
        extra(tool)
    usage = tool.format_usage().strip()[len("usage: "):].replace("%", "%%")
    parser = argparse.ArgumentParser(description=description, parents=[tool], add_help=False,
                                     allow_abbrev=False, usage=usage + " [--SECTION.KEY VALUE ...]")
    group = parser.add_argument_group("config keys", "set any config key, e.g. "
                                      "--token_reduction.r 50 (applied after --config)")
    for section, keys in _SCHEMA.items():
        for key, (default, rule) in keys.items():
            takes_list = isinstance(rule, (_List, _IntOrIntList))
            action = _ListOverride if isinstance(rule, _List) else _Override
            group.add_argument(f"--{section}.{key}", dest=_OVERRIDES, action=action,
                               nargs="+" if takes_list else 1, metavar="VALUE",
                               help=f"{rule.expected} (default: {default})".replace("%", "%%"))

    try:
        args, unknown = parser.parse_known_args(argv)
        dotted = [a for a in unknown if a.startswith("--") and "." in a.split("=", 1)[0]]
        for flag in dotted:
            _split_key(flag[2:].split("=", 1)[0])
        if unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        cfg = load_config(args.config, getattr(args, _OVERRIDES) or [])
    except ConfigError as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    delattr(args, _OVERRIDES)
    return cfg, args
