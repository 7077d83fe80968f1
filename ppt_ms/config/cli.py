"""A tool's command line: --config, --set and a --section.key flag for every config key."""
import argparse

from ..progress import set_quiet
from .core import load_config
from .mindcv_keys import MINDCV_KEYS, mindcv_flags_error
from .rules import ConfigError, IntOrIntList, ListOf
from .schema import SCHEMA, as_override, split_key
from .yaml_io import parse_yaml


_OVERRIDES = "_config_overrides"


class _Override(argparse.Action):
    """Collects --set and --section.key values, in command-line order, as (key, value) pairs."""

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string == "--set":
            pair = as_override(values)
        else:
            tokens = [parse_yaml(v, f"the value of {option_string}") for v in values]
            pair = (option_string[2:], tokens[0] if len(tokens) == 1 else tokens)
        setattr(namespace, self.dest, (getattr(namespace, self.dest) or []) + [pair])


class _ListOverride(_Override):
    """A --section.key flag of a list key: one value (not itself a list) is a one-item list."""

    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, values, option_string)
        key, value = getattr(namespace, self.dest)[-1]
        if not isinstance(value, list):
            getattr(namespace, self.dest)[-1] = (key, [value])


def summary(doc: str) -> str:
    """A tool's one-sentence help: the first paragraph of its docstring, its lines joined."""
    return " ".join(doc.strip().split("\n\n")[0].split())


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
    tool.add_argument("--verbose", action="store_true", help="after an error, print everything it knows "
                      "(e.g. every key of a checkpoint that does not fit)")
    tool.add_argument("--quiet", action="store_true", help="no progress display (done/total, rate, ETA on "
                      "stderr) during long runs")
    if extra is not None:
        extra(tool)
    usage = tool.format_usage().strip()[len("usage: "):].replace("%", "%%")
    parser = argparse.ArgumentParser(description=description, parents=[tool], add_help=False,
                                     allow_abbrev=False, usage=usage + " [--SECTION.KEY VALUE ...]")
    group = parser.add_argument_group("config keys", "set any config key, e.g. "
                                      "--token_reduction.r 50 (applied after --config)")
    for section, keys in SCHEMA.items():
        for key, (default, rule) in keys.items():
            takes_list = isinstance(rule, (ListOf, IntOrIntList))
            action = _ListOverride if isinstance(rule, ListOf) else _Override
            group.add_argument(f"--{section}.{key}", dest=_OVERRIDES, action=action,
                               nargs="+" if takes_list else 1, metavar="VALUE",
                               help=f"{rule.expected} (default: {default})".replace("%", "%%"))

    try:
        args, unknown = parser.parse_known_args(argv)
        dotted = [a for a in unknown if a.startswith("--") and "." in a.split("=", 1)[0]]
        for flag in dotted:
            split_key(flag[2:].split("=", 1)[0])
        flags = [a[2:].split("=", 1)[0] for a in unknown if a.startswith("--")]
        mindcv = [flag for flag in flags if flag in MINDCV_KEYS]
        if mindcv:
            raise mindcv_flags_error(mindcv)
        if unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        cfg = load_config(args.config, getattr(args, _OVERRIDES) or [])
    except ConfigError as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    delattr(args, _OVERRIDES)
    set_quiet(args.quiet)
    return cfg, args
