"""Sweep grids: "token_reduction.r=8,13,16" -> the settings to evaluate, one per method and combination.

Only token_reduction keys vary in a sweep (the data, weights and model stay
fixed, so every point is measured on the same images with the same weights);
the method is varied with `methods`, not in the grid.  A key a method does not
use (the threshold for ToMe, anything for `none`) is left out for that method,
so no setting is evaluated twice.
"""
import itertools
import math
from dataclasses import dataclass
from typing import Dict, List, Tuple

from ..config import METHODS, ConfigError, make_config

SECTION = "token_reduction"
USED_BY = {"none": (), "tome": ("r", "inflection", "prop_attn"), "ppt": ("r", "layers", "threshold", "prop_attn"),
           "prune": ("r", "layers", "prop_attn")}


def split_values(text):
    """'8,13,16' -> ['8', '13', '16']; commas inside [...] stay: '[3,6,9],[2,5]' -> ['[3,6,9]', '[2,5]']."""
    items, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if depth < 0:
            raise ConfigError("unbalanced ']' in grid values %r" % text)
        if char == "," and depth == 0:
            items.append(current.strip())
            current = ""
        else:
            current += char
    if depth:
        raise ConfigError("unbalanced '[' in grid values %r" % text)
    items.append(current.strip())
    if not all(items):
        raise ConfigError("empty value in grid values %r" % text)
    return items


def parse_grid(items) -> Dict[str, List[str]]:
    """['token_reduction.r=8,13', ...] -> {'r': ['8', '13'], ...} (values kept as YAML text)."""
    grid = {}
    for item in items:
        key, sep, values = str(item).partition("=")
        section, _, name = key.strip().partition(".")
        if not sep or not name:
            raise ConfigError("grid item %r must look like token_reduction.KEY=V1,V2,..." % item)
        if section != SECTION:
            raise ConfigError("grid key '%s': only token_reduction keys can vary in a sweep (the data and "
                              "weights stay fixed); set other keys with --%s VALUE" % (key, key))
        if name == "method":
            raise ConfigError("vary the method with --methods none,tome,ppt, not in the grid")
        if name not in USED_BY["ppt"] + USED_BY["tome"]:
            raise ConfigError("grid key '%s' is not a swept token_reduction key; use one of: r, layers, "
                              "threshold, inflection, prop_attn" % key)
        if name in grid:
            raise ConfigError("grid key '%s' given twice" % key)
        grid[name] = split_values(values)
    return grid


def parse_methods(text) -> List[str]:
    methods = [m.strip() for m in str(text).split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if not methods or unknown:
        raise ConfigError("--methods takes a comma-separated subset of %s, got %r" % (",".join(METHODS), text))
    return list(dict.fromkeys(methods))


@dataclass(frozen=True)
class SweepPoint:
    """One setting: the method and the grid values it uses, as (key, YAML text) pairs."""
    method: str
    settings: Tuple[Tuple[str, str], ...]

    def overrides(self, base_tr) -> List[str]:
        """token_reduction overrides that turn the base config into this point.  A
        base config's ToMe inflection is cleared for the methods that reject it."""
        pairs = [("method", self.method)] + list(self.settings)
        if self.method != "tome" and base_tr["inflection"] is not None:
            pairs.append(("inflection", "null"))
        return ["%s.%s=%s" % (SECTION, key, value) for key, value in pairs]

    def config(self, base_cfg):
        """The full config of this point (weights are loaded separately, so model.pretrained is cleared)."""
        return make_config(base_cfg.to_dict(), self.overrides(base_cfg[SECTION]) + ["model.pretrained=null"])

    def label(self):
        return " ".join([self.method] + ["%s=%s" % pair for pair in self.settings])


def sweep_points(grid, methods) -> List[SweepPoint]:
    """Every combination of the grid values a method uses, for every method, in order."""
    points = []
    for method in methods:
        keys = [key for key in grid if key in USED_BY[method]]
        for values in itertools.product(*(grid[key] for key in keys)):
            points.append(SweepPoint(method, tuple(zip(keys, values))))
    return points


def flag_value(value):
    """A config value as command-line flag text (lists as separate words)."""
    if isinstance(value, (list, tuple)):
        return " ".join(flag_value(v) for v in value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    return repr(value) if isinstance(value, float) else str(value)


def override_flags(point, base_cfg):
    """The --token_reduction.KEY VALUE flags that turn `base_cfg` into `point`
    (values as the validated config reads them)."""
    keys = [override.split("=", 1)[0].split(".", 1)[1] for override in point.overrides(base_cfg[SECTION])]
    tr = point.config(base_cfg)[SECTION]
    return " ".join("--%s.%s %s" % (SECTION, key, flag_value(tr[key])) for key in keys)
