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

Modules: rules (value rules, ConfigError), yaml_io (reading YAML), schema (every key,
its default and rule; cross-key checks), core (Config, make/load/dump), cli (parse_cli).
"""
from .cli import parse_cli, summary
from .core import Config, dump_config, load_config, make_config
from .rules import ConfigError
from .schema import BENCHMARK_VARIANTS, DEFAULTS, FORMULATION_KEYS, FUSED, METHODS, eval_batch_size

__all__ = ["BENCHMARK_VARIANTS", "Config", "ConfigError", "DEFAULTS", "FORMULATION_KEYS", "FUSED", "METHODS", "dump_config",
           "eval_batch_size", "load_config", "make_config", "parse_cli", "summary"]
