"""From a config to a ready network: MindSpore context and model with weights."""
import logging
import os

import mindspore as ms

from .checkpoint import load_pretrained
from .config import FORMULATION_KEYS, ConfigError
from .formulations import prepare
from .models import create_model

logger = logging.getLogger(__name__)

MODES = {"graph": ms.GRAPH_MODE, "pynative": ms.PYNATIVE_MODE}


def setup_context(system_cfg):
    """Apply the `system` config section (device_target, mode, seed).  A device
    this MindSpore build or machine cannot use is a ConfigError, raised before
    any heavy work."""
    target = system_cfg["device_target"]
    try:
        ms.set_context(mode=MODES[system_cfg["mode"]])
        if ms.get_context("device_target") != target:  # the device can be set once per process
            ms.set_device(target)
        ms.set_seed(int(system_cfg["seed"]))
        ms.Tensor([1.0]).asnumpy()
    except (RuntimeError, ValueError) as err:
        raise ConfigError("system.device_target=%s is not usable here (%s); this MindSpore build supports "
                           "the devices its package was built for: CPU always, GPU/Ascend only with their "
                           "wheel and drivers" % (target, str(err).splitlines()[0])) from None


def chosen_weights(*candidates, needed_for=None):
    """The first of `candidates` (e.g. --ckpt, eval.ckpt, model.pretrained) that is set, checked to
    exist; with `needed_for` (what the weights are for), having none is an error instead of None
    (random weights would give a number that looks like a result)."""
    path = next((c for c in candidates if c), None)
    if path is None and needed_for:
        raise ConfigError("no weights %s: pass --ckpt FILE or set model.pretrained (with random weights the "
                          "result would mean nothing)" % needed_for)
    if path is not None and not os.path.isfile(path):
        raise FileNotFoundError("checkpoint not found: %s" % path)
    return path


def model_token_reduction(cfg) -> dict:
    """The config's token_reduction section as the model takes it (without the formulation
    setting fused_cpu_kernel, which `prepare` reads)."""
    return {k: v for k, v in cfg["token_reduction"].items() if k not in FORMULATION_KEYS}


def build_model(cfg, weights=None, purpose=None, token_reduction=None):
    """The config's model with its token reduction (or `token_reduction`, a mapping given
    instead); weights from `weights` (a checkpoint path) or else `model.pretrained`, if
    either is given.  Without `purpose`, the canonical
    network; with one ("inference", "training", "export"), what ppt_ms.formulations.prepare
    makes of it for this device and the config's settings (model.cpu_kernels,
    token_reduction.fused_cpu_kernel, system.amp_level and amp_dtype), returned as
    (canonical network, network to run)."""
    m = cfg["model"]
    net = create_model(m["name"], num_classes=m["num_classes"], img_size=m["img_size"],
                       drop_path_rate=m["drop_path_rate"],
                       token_reduction=model_token_reduction(cfg) if token_reduction is None else token_reduction)
    path = weights or m["pretrained"]
    if path:
        report = load_pretrained(net, path, use_ema=m["use_ema"])
        logger.info("loaded %s: %s", path, report)
    if purpose is None:
        return net
    return net, prepare_for(cfg, net, purpose)


def prepare_for(cfg, net, purpose: str):
    """ppt_ms.formulations.prepare with the config's settings: the network to run for `purpose`."""
    return prepare(net, purpose, cpu_kernels=cfg["model"]["cpu_kernels"],
                   fused_step=cfg["token_reduction"]["fused_cpu_kernel"],
                   amp_level=cfg["system"]["amp_level"], amp_dtype=cfg["system"]["amp_dtype"])
