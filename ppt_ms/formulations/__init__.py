"""The forms of the one canonical network, and `prepare`, which decides which form a tool gets.

The model (ppt_ms.models, ppt_ms.token_reduction) is written once, in plain MindSpore ops;
that is what Ascend and GPU run.  Each other form is a transform net -> net that swaps cells
and computes the same function (the conformance tests run every form):

- CPU, float32 (model.cpu_kernels): LayerNorm, GELU, the patch and head layouts as C++
  kernels, forward and backward (cpu_layers.py), for inference and training;
- CPU inference, float32: the reduction step as one C++ kernel
  (token_reduction.fused_cpu_kernel; fused_step.py), linear weights stored [in, out]
  (inference_layout.py) and, with model.cpu_kernels, qkv's and fc1's biases, the attention
  scale and the softmax folded into the kernels (folded.py);
- ONNX export: gathers and merges the exporter writes correctly and a rational erf
  (onnx.py, applied while writing the file; onnx_erf.py puts ONNX's Erf back).

`prepare(net, purpose, ...)` applies the forms that fit the purpose and the device, then
mixed precision; every tool calls it (through ppt_ms.builder).
"""
import logging

import mindspore as ms

from . import native
from .cpu_layers import CpuAttention, CpuGELU, CpuLayerNorm, CpuPatchEmbed, with_cpu_layers
from .folded import FoldedAttention, FoldedMlp, with_folded_kernels
from .fused_step import FusedReducer, with_fused_steps
from .inference_layout import InferenceLinear, with_inference_layout

logger = logging.getLogger(__name__)

PURPOSES = ("inference", "training", "export")
AMP_DTYPES = {"float16": ms.float16, "bfloat16": ms.bfloat16}
# MindSpore 2.10's O1 rewrites the network's Python source (mindspore.rewrite), which raises TypeError
# on any function that calls a functional op such as ops.concat (a ten-line network is enough)
O1_REFUSED = ("system.amp_level O1 is not usable with MindSpore %s: its O1 rewrites the network's source and fails "
              "on functions that call MindSpore's functional ops (TypeError: ... got _PyboostConcatPrim); use O2 "
              "(float32 LayerNorm and token-reduction decisions) or O3" % ms.__version__)
CPU_FORM_CELLS = (CpuAttention, CpuGELU, CpuLayerNorm, CpuPatchEmbed, FoldedAttention, FoldedMlp, FusedReducer,
                  InferenceLinear)


def cpu_form_cells(net) -> list:
    """Names of the CPU-form cell classes in `net` (empty for the canonical network)."""
    return sorted({type(cell).__name__ for _, cell in net.cells_and_names() if isinstance(cell, CPU_FORM_CELLS)})


def _cpu_forms_usable(requested, device: str, amp_level: str, purpose: str) -> bool:
    """Whether the CPU-only forms asked for (setting names) can run; one log line when not."""
    if not requested:
        return False
    names = " and ".join(requested)
    if device != "CPU":
        logger.warning("%s: CPU only, skipped on %s (MindSpore's ops run instead, with the same results)",
                       names, device)
    elif purpose == "export":
        logger.info("%s: skipped for export (a file cannot carry this machine's compiled kernels; MindSpore's "
                    "ops have the same results)", names)
    elif amp_level != "O0":
        logger.warning("%s: float32 kernels, skipped under system.amp_level %s (MindSpore's ops run instead)",
                       names, amp_level)
    elif not native.compiler_available():
        logger.warning("%s: no C++ compiler (%s) to build the CPU kernels; using MindSpore's ops (same results, "
                       "slower). Install g++ or set CXX.", names, native.compiler())
    else:
        return True
    return False


def prepare(net, purpose: str, device: str = None, cpu_kernels: bool = False, fused_step: bool = False,
            amp_level: str = "O0", amp_dtype: str = "float16"):
    """The network to run for `purpose` ("inference", "training" or "export") on `device`
    (default: the context's): `net`, canonical as built, with the forms that apply swapped
    in place, then MindSpore's auto mixed precision at `amp_level` in `amp_dtype`, which
    may wrap it (read token plans and MACs from `net`, run the result).

    cpu_kernels / fused_step: the model.cpu_kernels and token_reduction.fused_cpu_kernel
    settings; they take effect on CPU in float32 (amp_level O0) with a C++ compiler,
    fused_step in inference only.  On CPU, inference in float32 also stores linear
    weights [in, out] (load weights before this) and, with cpu_kernels, folds biases, the
    attention scale and the softmax into the kernels.  Export gets the canonical network."""
    if purpose not in PURPOSES:
        raise ValueError("prepare: purpose %r is not one of %s" % (purpose, ", ".join(PURPOSES)))
    if amp_dtype not in AMP_DTYPES:
        raise ValueError("prepare: amp_dtype %r is not one of %s" % (amp_dtype, ", ".join(AMP_DTYPES)))
    if amp_level == "O1":
        raise ValueError(O1_REFUSED)
    device = device or ms.get_context("device_target")
    fuse = fused_step and purpose == "inference"
    requested = [name for name, on in (("model.cpu_kernels", cpu_kernels), ("token_reduction.fused_cpu_kernel", fuse))
                 if on]
    usable = _cpu_forms_usable(requested, device, amp_level, purpose)
    if usable and cpu_kernels:
        with_cpu_layers(net)
    if usable and fuse:
        with_fused_steps(net)
    if device == "CPU" and purpose == "inference" and amp_level == "O0":
        with_inference_layout(net)
        if usable and cpu_kernels:
            with_folded_kernels(net)
    if purpose == "export" or amp_level == "O0":
        return net
    return ms.amp.auto_mixed_precision(net, amp_level, AMP_DTYPES[amp_dtype])
