"""The compared networks of a benchmark.

Variants.  Every entry of benchmark.compare gets its own network: the SAME
model and the SAME weights (the first variant loads them, the others copy its
parameters), differing only in token_reduction.  The config's own method
keeps the config's settings; the other methods start from PAPER_SETTINGS
(ToMe r 13 in every block; PPT r 50 at blocks [3, 6, 9] with threshold 7e-5;
pruning r 50 at [3, 6, 9]).  Any setting of any variant can be overridden
with "METHOD.KEY=VALUE" strings, e.g. "tome.r=8" or "ppt.layers=[1,2]"
(VALUE is read as YAML and validated like a config key).  An entry
METHOD-fused ("tome-fused", "ppt-fused") is METHOD with
token_reduction.fused_cpu_kernel on (its overrides are "ppt-fused.KEY=VALUE");
the plain METHOD has it off.  Source tracing is off: the variants are the
plain inference networks.
"""
from typing import Dict, Optional

import mindspore as ms
from mindspore import nn

from ..builder import build_model
from ..config import FUSED, ConfigError, make_config
from ..errors import PPTMSError

PAPER_SETTINGS = {
    "none": {},
    "tome": {"r": 13, "inflection": None},
    "ppt": {"r": 50, "layers": [3, 6, 9], "threshold": 7.0e-5, "inflection": None},
    "prune": {"r": 50, "layers": [3, 6, 9], "inflection": None},
}


class BenchmarkError(PPTMSError, ValueError):
    """A benchmark variant that cannot be set up; the message names the variant and the setting."""


def _split_override(item: str, methods):
    method, dot, setting = item.partition(".")
    if not dot or "=" not in setting:
        raise BenchmarkError("variant override %r must look like METHOD.KEY=VALUE, e.g. tome.r=8" % item)
    if method not in methods:
        raise BenchmarkError("variant override %r is for method %r, which is not compared; compared: %s"
                             % (item, method, ", ".join(methods)))
    if setting.partition("=")[0].strip() == "method":
        raise BenchmarkError("variant override %r: a variant's method is its name; list methods in "
                             "benchmark.compare instead" % item)
    return method, "token_reduction." + setting


def variant_configs(cfg, methods=None, overrides=()) -> Dict[str, object]:
    """One validated config per compared method (see the module docstring);
    model.pretrained is cleared in all of them (build_variants loads weights once)."""
    methods = list(methods or cfg["benchmark"]["compare"])
    own = cfg["token_reduction"]["method"]
    extra = {method: [] for method in methods}
    for item in overrides:
        method, setting = _split_override(item, methods)
        extra[method].append(setting)
    data = cfg.to_dict()
    data["model"]["pretrained"] = None
    configs = {}
    for name in methods:
        fused = name.endswith(FUSED)
        method = name[:-len(FUSED)] if fused else name
        defaults = {} if method == own else PAPER_SETTINGS[method]
        settings = [("token_reduction.method", method), ("token_reduction.trace_source", False),
                    ("token_reduction.fused_cpu_kernel", fused)]
        settings += [("token_reduction." + key, value) for key, value in defaults.items()]
        try:
            configs[name] = make_config(data, settings + extra[name])
        except ConfigError as error:
            raise BenchmarkError("benchmark variant '%s': %s" % (name, error)) from None
    return configs


def copy_parameters(source: nn.Cell, target: nn.Cell):
    """Give `target` copies of `source`'s parameter values (the same names are required)."""
    values = {p.name: p for p in source.get_parameters()}
    names = [p.name for p in target.get_parameters()]
    if sorted(names) != sorted(values):
        raise BenchmarkError("variants differ in parameters: %s" % sorted(set(names) ^ set(values)))
    for param in target.get_parameters():
        param.set_data(ms.Tensor(values[param.name].asnumpy()))


def build_variants(configs: Dict[str, object], weights: Optional[str] = None) -> Dict[str, nn.Cell]:
    """Networks in inference mode, one per variant config; the first loads
    `weights` (if any), the others copy its parameters."""
    nets = {}
    for method, cfg in configs.items():
        first = not nets
        try:
            net = build_model(cfg, weights if first else None)
        except ValueError as error:
            raise BenchmarkError("benchmark variant '%s' (token_reduction %s) does not fit %s: %s; set its values "
                                 "with --variant %s.KEY=VALUE" % (method, dict(cfg["token_reduction"]),
                                                                  cfg["model"]["name"], error, method)) from None
        if not first:
            copy_parameters(next(iter(nets.values())), net)
        net.set_train(False)
        nets[method] = net
    return nets
