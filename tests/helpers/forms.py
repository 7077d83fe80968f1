"""The forms of a network (ppt_ms.formulations) that conformance runs: each must compute
the canonical network's function."""
import pytest

from ppt_ms.formulations import native, prepare
from ppt_ms.formulations.onnx import to_onnx_form

# form -> whether it needs the C++ compiler
FORMS = {"canonical": False, "cpu-inference": True, "cpu-training": True, "onnx": False}


def in_form(net, form: str):
    """`net` (weights loaded) in `form`, swapped in place, in inference mode; skips a form
    that needs a compiler on a machine without one."""
    if FORMS[form] and not native.compiler_available():
        pytest.skip("no C++ compiler (%s): the CPU kernels cannot be built here" % native.compiler())
    if form == "cpu-inference":
        prepare(net, "inference", "CPU", cpu_kernels=True, fused_step=True)
    elif form == "cpu-training":
        prepare(net, "training", "CPU", cpu_kernels=True, fused_step=True)
    elif form == "onnx":
        to_onnx_form(net)
    net.set_train(False)
    return net
