"""From a config to a ready network: MindSpore context and model with weights."""
import logging

import mindspore as ms

from .checkpoint import TRAINING_ONLY_PREFIXES, load_pretrained, read_state_dict
from . import native
from .config import ConfigError
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


def model_state(path):
    """Network tensors of a checkpoint: a timm/DeiT file or one written by
    tools/train.py (whose optimizer and EMA entries are left out)."""
    state = read_state_dict(path)
    return {k: v for k, v in state.items() if not k.startswith(TRAINING_ONLY_PREFIXES)}


def use_cpu_kernels(requested: bool, setting: str = "model.cpu_kernels") -> bool:
    """A CPU-kernel switch (`setting`: model.cpu_kernels or token_reduction.fused_cpu_kernel)
    as this process can honour it: only on the CPU backend (other devices use MindSpore's
    ops; the shipped configs turn both on), and only with a C++ compiler to build them
    (without one: a warning, and MindSpore's ops, which compute the same functions)."""
    if not requested or ms.get_context("device_target") != "CPU":
        return False
    if not native.compiler_available():
        logger.warning("%s: no C++ compiler (%s) to build the CPU kernels; using MindSpore's ops (same results, "
                       "slower). Install g++ or set CXX.", setting, native.compiler())
        return False
    return True


def build_model(cfg, weights=None):
    """The config's model with its token reduction; weights from `weights`
    (a checkpoint path) or else `model.pretrained`, if either is given."""
    m = cfg["model"]
    token_reduction = dict(cfg["token_reduction"])
    token_reduction["fused_cpu_kernel"] = use_cpu_kernels(token_reduction["fused_cpu_kernel"],
                                                          "token_reduction.fused_cpu_kernel")
    net = create_model(m["name"], num_classes=m["num_classes"], img_size=m["img_size"],
                       drop_path_rate=m["drop_path_rate"], token_reduction=token_reduction,
                       cpu_kernels=use_cpu_kernels(m["cpu_kernels"]))
    path = weights or m["pretrained"]
    if path:
        report = load_pretrained(net, model_state(path))
        logger.info("loaded %s: %s", path, report)
    return net
