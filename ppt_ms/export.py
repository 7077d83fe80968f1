"""Export a network, token reduction included, to a deployable file and verify it.

The token plan is static, so the reduced network exports like any other graph:
top-k, gathers, the merges and PPT's per-image select all become part of
the file.  Token counts are fixed at export time; the batch dimension is
dynamic in MindIR files and fixed in ONNX files, whose exporter in MindSpore
2.10 refuses dynamic shapes (DYNAMIC_ONNX_REFUSED).

Formats (MindSpore 2.10 on CPU, Python 3.11):
- MINDIR: exported, then verified by reloading it with ``mindspore.load`` +
  ``nn.GraphCell`` and comparing its outputs with the live network on the
  same batch.  MindSpore Lite, the usual MindIR runtime, cannot be used here:
  the registry only has mindspore-lite 2.0.0 for Python 3.7, which refuses
  MindIR v3 files, so the check runs the file with MindSpore itself.
- ONNX: exported in the formulation of formulations/onnx.py (GELU's erf as a
  rational function, gathers and merges from ops the exporter converts
  correctly); onnx_erf then puts ONNX's exact Erf in place of each rational
  erf, and the file runs in onnxruntime next to the unchanged live network.
  A reducing network is also exported once more with its per-block decisions
  as outputs (models.TokenTrace): PPT's pool/prune choice of every image in
  every block must be identical in the file, and the merged tokens' sizes
  equal.
- AIR: MindSpore builds AIR files only through the Ascend backend, so on
  CPU/GPU this is an ExportError before any work is done.

A network in a CPU form (ppt_ms.formulations: C++ kernels, the fused step,
the [in, out] weight layout) is not exported: the kernels are shared
libraries of this machine, which the file could not carry.
`export_and_verify` exports the canonical network; `export_network` refuses
a CPU form.
"""
import dataclasses
import os
import re
import tempfile
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import mindspore as ms
from mindspore import nn

from .builder import build_model
from .data import sample_images
from .errors import PPTMSError
from .formulations import cpu_form_cells
from .formulations.onnx import onnx_formulation
from .formulations.onnx_erf import use_onnx_erf
from .models.vision_transformer import Features, TokenTrace
from .onnx_runtime import OnnxRuntimeError, OnnxSession

SUFFIXES = {"MINDIR": ".mindir", "ONNX": ".onnx", "AIR": ".air"}
DYNAMIC_BATCH_FORMATS = ("MINDIR",)
DYNAMIC_ONNX_REFUSED = ("MindSpore %s's ONNX exporter refuses dynamic shapes ('Export ONNX format model not "
                        "support dynamic shape mode'), so an ONNX file has a fixed batch size: set "
                        "export.dynamic_batch false and export one file per --export.batch_size" % ms.__version__)
DEFAULT_TOLERANCE = 1e-4


class ExportError(PPTMSError, RuntimeError):
    """A network cannot be exported in the requested format, or the file does
    not reproduce the network.  The message names the format and the reason."""


@dataclass(frozen=True)
class Verification:
    """How the exported file compared with the live network on one batch.

    `input_shape` is the file's input, [B, 3, H, W] (B None: any batch size);
    `batch_sizes` the batch sizes both ran on; `output_shapes` one shape per
    output at the first of them; `max_abs_diff` the largest |file - live| over all
    outputs; `decisions` what the decision check found (ONNX files of
    reducing networks), else None.
    """
    path: str
    file_format: str
    input_shape: Tuple[Optional[int], ...]
    batch_sizes: Tuple[int, ...]
    output_shapes: Tuple[Tuple[int, ...], ...]
    max_abs_diff: float
    tolerance: float
    decisions: Optional[str] = None


def default_export_path(cfg, output_dir: str = "output") -> str:
    """output/<model>_<method>_b<batch><suffix>, e.g. output/deit_small_patch16_224_ppt_b1.mindir."""
    export = cfg["export"]
    name = "%s_%s_b%d%s" % (cfg["model"]["name"], cfg["token_reduction"]["method"], export["batch_size"],
                            SUFFIXES[export["file_format"]])
    return os.path.join(output_dir, name)


def _unsupported_onnx_operator(error: Exception):
    match = re.search(r"Can not find key (\w+) in convert map", str(error))
    return match.group(1) if match else None


def export_network(net: nn.Cell, images: ms.Tensor, path: str, file_format: str = "MINDIR",
                   dynamic_batch: bool = False) -> str:
    """Export `net` (in inference mode) for inputs shaped like `images` to `path`
    and return the path written: `path` itself, or with the format's suffix
    appended when it lacks it (as MindSpore names the file).  With
    `dynamic_batch` the file takes any batch size (MindIR only)."""
    if file_format not in SUFFIXES:
        raise ExportError("unknown export format %r; choose one of %s" % (file_format, ", ".join(SUFFIXES)))
    if dynamic_batch and file_format not in DYNAMIC_BATCH_FORMATS:
        raise ExportError(DYNAMIC_ONNX_REFUSED if file_format == "ONNX" else
                          "a dynamic batch dimension is supported for %s files only; set export.dynamic_batch "
                          "false" % ", ".join(DYNAMIC_BATCH_FORMATS))
    if not path.endswith(SUFFIXES[file_format]):
        path += SUFFIXES[file_format]
    cpu_cells = cpu_form_cells(net)
    if cpu_cells:
        raise ExportError("this network is in a CPU form (%s: kernels of this machine that a %s file cannot carry); "
                          "export the network as built, or prepared for export (ppt_ms.formulations.prepare(net, "
                          "'export')), which has the same results" % (", ".join(cpu_cells), file_format))
    device = ms.get_context("device_target")
    if file_format == "AIR" and device != "Ascend":
        raise ExportError("AIR export needs the Ascend backend (MindSpore builds AIR files through it); this "
                          "run uses %s. Export MINDIR instead." % device)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    net.set_train(False)
    if file_format == "ONNX":
        try:
            write_onnx(net, net, images, path)
        except RuntimeError as error:
            operator = _unsupported_onnx_operator(error)
            if operator is None:
                raise ExportError("ONNX export of %s failed: %s" % (type(net).__name__,
                                                                    str(error).strip().splitlines()[0])) from None
            raise ExportError("MindSpore %s cannot export this network to ONNX: its ONNX exporter has no converter "
                              "for the %s operator. Export MINDIR instead." % (ms.__version__, operator)) from None
    else:
        if dynamic_batch:
            images = ms.Tensor(shape=[None] + list(images.shape[1:]), dtype=images.dtype)
        ms.export(net, images, file_name=path, file_format=file_format)
    if not os.path.isfile(path):
        raise ExportError("MindSpore reported no error but wrote no %s file at %s" % (file_format, path))
    return path


def output_names(cell: nn.Cell):
    """The name of an exported file's one output: logits, or embeddings for a network without a
    classifier and for Features.  None (the exporter's numbers) for a network of several outputs:
    a TokenTrace, or a network tracing its source map."""
    if isinstance(cell, TokenTrace) or getattr(cell, "trace_source", False):
        return None
    if isinstance(cell, Features) or getattr(cell, "num_classes", 1) == 0:
        return ["embeddings"]
    return ["logits"]


def write_onnx(cell: nn.Cell, net: nn.Cell, images: ms.Tensor, path: str):
    """Export `cell` (`net` or a Cell around it) to ONNX with `net` in its exportable formulation
    (formulations/onnx.py), then put ONNX's exact Erf back (onnx_erf)."""
    with onnx_formulation(net):
        ms.onnx.export(cell, images, file_name=path)
    use_onnx_erf(path)
    names = output_names(cell)
    if names:
        rename_onnx_values(path, {"inputs": ["images"], "outputs": names})


def rename_onnx_values(path: str, names: dict):
    """Rename the ONNX file's graph inputs and outputs in place (names: {"inputs": [...], "outputs":
    [...]}, in order), and every node that reads or writes them.  Done on the file: MindSpore 2.10's
    exporter, given output_names, named a constant instead of the output of some graphs."""
    import onnx
    model = onnx.load(path)
    graph = model.graph
    renames = dict(zip([value.name for value in graph.input], names["inputs"]))
    renames.update(zip([value.name for value in graph.output], names["outputs"]))
    for value in list(graph.input) + list(graph.output):
        value.name = renames.get(value.name, value.name)
    for node in graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    onnx.save(model, path)


def _as_arrays(outputs):
    """A network's output (a Tensor or a tuple of them) as a list of NumPy arrays."""
    if isinstance(outputs, (tuple, list)):
        return [np.asarray(o.asnumpy() if isinstance(o, ms.Tensor) else o) for o in outputs]
    return [outputs.asnumpy() if isinstance(outputs, ms.Tensor) else np.asarray(outputs)]


def run_mindir(path: str, images: ms.Tensor):
    """Outputs of a MindIR file on `images`, run by MindSpore (nn.GraphCell), as NumPy arrays."""
    try:
        graph = ms.load(path)
    except (RuntimeError, ValueError) as error:
        raise ExportError("cannot load MindIR file %s: %s" % (path, str(error).strip().splitlines()[0])) from None
    try:
        outputs = nn.GraphCell(graph)(images)
    except (RuntimeError, ValueError, TypeError) as error:
        raise ExportError("cannot run MindIR file %s on an input of shape %s (a file accepts only the input shape "
                          "it was exported with): %s" % (path, list(images.shape),
                                                         str(error).strip().splitlines()[0])) from None
    return _as_arrays(outputs)


def run_onnx(path: str, images: ms.Tensor):
    """Outputs of an ONNX file on `images`, run by onnxruntime, as NumPy arrays."""
    try:
        return OnnxSession(path).run(images.asnumpy())
    except OnnxRuntimeError as error:
        raise ExportError("%s was written but not verified: %s" % (path, error)) from None


def verify_export(path: str, net: nn.Cell, images: ms.Tensor, file_format: str = "MINDIR",
                  tolerance: float = DEFAULT_TOLERANCE) -> Verification:
    """Run the exported file and the live `net` on `images`; ExportError when an
    output differs in shape or by more than `tolerance` anywhere."""
    runners = {"MINDIR": run_mindir, "ONNX": run_onnx}
    if file_format not in runners:
        raise ExportError("cannot verify %s files on this machine; only %s" % (file_format, " and ".join(runners)))
    net.set_train(False)
    expected = _as_arrays(net(images))
    got = runners[file_format](path, images)
    if [e.shape for e in expected] != [g.shape for g in got]:
        raise ExportError("%s gives outputs of shapes %s, the live network %s"
                          % (path, [g.shape for g in got], [e.shape for e in expected]))
    max_diff = max(float(np.max(np.abs(e.astype(np.float64) - g))) for e, g in zip(expected, got))
    if not max_diff <= tolerance:
        raise ExportError("%s does not reproduce the live network: max |difference| %.3g > tolerance %.3g"
                          % (path, max_diff, tolerance))
    decisions = None
    if file_format == "ONNX" and getattr(net, "reduces", False):
        decisions = verify_onnx_decisions(net, images, tolerance)
    return Verification(path=path, file_format=file_format, input_shape=tuple(images.shape),
                        batch_sizes=(images.shape[0],), output_shapes=tuple(tuple(e.shape) for e in expected),
                        max_abs_diff=max_diff, tolerance=tolerance, decisions=decisions)


def run_trace_onnx(net: nn.Cell, images: ms.Tensor):
    """`net` traced (models.TokenTrace: logits, token sizes, source, per-block
    decisions [depth, B, 2]), exported to a temporary ONNX file as
    export_network writes one and run in onnxruntime on `images`."""
    trace = TokenTrace(net)
    trace.set_train(False)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "trace.onnx")
        write_onnx(trace, net, images, path)
        return run_onnx(path, images)


def verify_onnx_decisions(net: nn.Cell, images: ms.Tensor, tolerance: float = DEFAULT_TOLERANCE) -> str:
    """Run `net` traced in onnxruntime (run_trace_onnx) and live, and compare the two (compare_traces)."""
    reducing = [block.plan.index for block in net.blocks if block.reduces]
    return compare_traces(_as_arrays(TokenTrace(net)(images)), run_trace_onnx(net, images), reducing,
                          net.token_reduction["method"], tolerance)


def compare_traces(expected, got, reducing_blocks, method: str, tolerance: float = DEFAULT_TOLERANCE) -> str:
    """Two TokenTrace outputs (logits, sizes, source, decisions [depth, B, 2]): ExportError unless
    PPT's pool/prune choice is identical in every reducing block for every image and the token
    sizes agree within `tolerance`; otherwise a one-line summary."""
    pooled, pooled_file = expected[3][reducing_blocks, :, 0], got[3][reducing_blocks, :, 0]
    differing = int(np.sum(pooled != pooled_file))
    if differing:
        raise ExportError("the ONNX file decides differently from the live network: %d of %d PPT pool/prune "
                          "choices (block x image) differ" % (differing, pooled.size))
    size_diff = float(np.max(np.abs(expected[1] - got[1])))
    if not size_diff <= tolerance:
        raise ExportError("the ONNX file merges differently from the live network: token sizes differ by up to "
                          "%.3g" % size_diff)
    summary = "token sizes agree (max |difference| %.3g)" % size_diff
    if method == "ppt":
        summary = "PPT decisions identical: %d of %d (block x image) pooled, the rest pruned; %s" % (
            int(pooled.sum()), pooled.size, summary)
    return summary


def export_and_verify(cfg, weights=None, tolerance: float = DEFAULT_TOLERANCE) -> Verification:
    """Build the config's model (weights from `weights` or model.pretrained),
    export it as the `export` section says and verify the file on a
    deterministic random batch (seeded by system.seed).  The network is the canonical
    one (formulations.prepare for "export"), whatever the config's CPU settings: the
    file cannot carry compiled kernels."""
    export = cfg["export"]
    file_format, dynamic = export["file_format"], export["dynamic_batch"]
    if dynamic is None:
        dynamic = file_format in DYNAMIC_BATCH_FORMATS
    net, _ = build_model(cfg, weights, purpose="export")
    seed, img_size = cfg["system"]["seed"], cfg["model"]["img_size"]
    images = sample_images(export["batch_size"], img_size, seed)
    path = export_network(net, images, export["file"] or default_export_path(cfg), file_format, dynamic)
    result = verify_export(path, net, images, file_format, tolerance)
    if dynamic:  # the file must also take another batch size
        other = verify_export(path, net, sample_images(export["batch_size"] + 1, img_size, seed + 1), file_format,
                              tolerance)
        result = dataclasses.replace(result, input_shape=(None,) + result.input_shape[1:],
                                     output_shapes=tuple((None,) + shape[1:] for shape in result.output_shapes),
                                     batch_sizes=result.batch_sizes + other.batch_sizes,
                                     max_abs_diff=max(result.max_abs_diff, other.max_abs_diff))
    return result


def _batch_note(result: Verification) -> str:
    if result.input_shape[0] is None:
        return "dynamic batch size; verified at batch %s" % " and ".join(map(str, result.batch_sizes))
    return "fixed shape: the file accepts exactly this batch size"


def format_verification(result: Verification) -> str:
    lines = [
        "exported %s: %s (%.1f MB)" % (result.file_format, result.path, os.path.getsize(result.path) / 2 ** 20),
        "input  %s float32 (%s)" % (list(result.input_shape), _batch_note(result)),
        "output %s" % ", ".join(str(list(s)) for s in result.output_shapes),
        "verified against the live network: max |difference| %.3g <= %.3g" % (result.max_abs_diff,
                                                                              result.tolerance)]
    if result.decisions:
        lines.append("verified decisions: %s" % result.decisions)
    return "\n".join(lines)
