"""The Config class and the ways to build, load and write one."""
import copy
import os
from collections.abc import Mapping

import yaml

from .rules import ConfigError, suggestion
from .schema import DEFAULTS, as_override, merge, split_key, validate
from .yaml_io import parse_yaml


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
                                 f"{suggestion(key, self._values)}; valid keys: "
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
        merge(tree, {} if data is None else data)
    except ConfigError as err:
        if source is None:
            raise
        raise ConfigError(f"{source}: {err}") from None
    for item in overrides:
        key, value = as_override(item)
        section, name = split_key(key)
        tree[section][name] = value
    return Config(validate(tree))


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
        data = parse_yaml(text, f"config file '{path}'")
    return make_config(data, overrides, source=f"config file '{path}'")


def dump_config(cfg, path):
    """Write ``cfg`` as YAML to ``path`` (parent folders are created); load_config reads it back."""
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(cfg.to_dict(), handle, sort_keys=False, default_flow_style=None)
