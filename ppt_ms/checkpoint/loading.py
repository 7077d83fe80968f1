"""load_pretrained: put a timm-named state dict into a MindSpore network, checking every key."""
import itertools
import logging
import os
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Tuple

import mindspore as ms
import numpy as np
from mindspore import Tensor

from .describe import likely_models, shape_of_state
from .errors import CheckpointError
from .pos_embed import resize_pos_embed
from .state_dict import read_state_dict

logger = logging.getLogger(__name__)

CLASSIFIER_KEYS = ("head.weight", "head.bias", "head_dist.weight", "head_dist.bias")
Shape = Tuple[int, ...]


@dataclass
class LoadReport:
    """What load_pretrained did. Shapes are (checkpoint, network)."""
    loaded: List[str] = field(default_factory=list)
    resized: Dict[str, Tuple[Shape, Shape]] = field(default_factory=dict)
    skipped: Dict[str, Tuple[Shape, Shape]] = field(default_factory=dict)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    ignored_scalars: List[str] = field(default_factory=list)

    def lines(self) -> List[str]:
        out = ["loaded %d parameter(s)" % len(self.loaded)]
        out += ["resized %s: %s -> %s" % (k, old, new) for k, (old, new) in self.resized.items()]
        out += ["skipped %s: checkpoint %s vs network %s (kept the network's initialisation)"
                % (k, old or "none", new) for k, (old, new) in self.skipped.items()]
        if self.missing:
            out.append("missing from checkpoint (kept initialisation): %s" % ", ".join(self.missing))
        if self.unexpected:
            out.append("not in the network (ignored): %s" % ", ".join(self.unexpected))
        if self.ignored_scalars:
            out.append("ignored bookkeeping scalars: %s" % ", ".join(self.ignored_scalars))
        return out


def load_pretrained(net: ms.nn.Cell, path_or_state_dict, strict: bool = True) -> LoadReport:
    """Copy checkpoint tensors into `net` by name (timm names == ppt_ms names).

    - pos_embed on another patch grid is resampled as timm 1.x does (pos_embed.py), its
      prefix entries kept (net.pos_embed_prefix_tokens: none when it covers the patches only);
    - a classifier for another number of classes (head.*, head_dist.*) is skipped
      with a warning and the network keeps its own initialisation;
    - 0-d entries the network has no parameter for (epoch, step, ...) are ignored;
    - anything else that does not fit raises ONE CheckpointError listing every
      missing key, unexpected key and shape/dtype mismatch. strict=False tolerates
      missing and unexpected keys (reported), never mismatched shapes.
    Nothing is written into `net` unless the whole checkpoint fits.
    """
    state = _as_arrays(path_or_state_dict)
    given = {k: v.shape for k, v in state.items()}
    params = net.parameters_dict()
    report = LoadReport()
    _skip_other_classifier(state, params, report)
    _resize_position_embedding(net, state, params, report)

    report.ignored_scalars = [k for k in state if k not in params and state[k].ndim == 0]
    report.unexpected = [k for k in state if k not in params and state[k].ndim != 0]
    report.missing = [k for k in params if k not in state and k not in report.skipped]
    mismatches = [_mismatch(k, state[k], params[k]) for k in state if k in params]
    mismatches = [m for m in mismatches if m]
    problems = mismatches if not strict else (
        ["missing in checkpoint: %s" % k for k in report.missing]
        + ["unexpected in checkpoint: %s %s" % (k, state[k].shape) for k in report.unexpected] + mismatches)
    if problems:
        raise CheckpointError(_does_not_fit(_source_name(path_or_state_dict), given, params, problems),
                              details=problems)
    if report.missing or report.unexpected:
        logger.warning("non-strict load: missing %s; unexpected %s", report.missing, report.unexpected)

    for name, array in state.items():
        if name in params:
            params[name].set_data(Tensor(array, dtype=params[name].dtype))
            report.loaded.append(name)
    return report


EXAMPLES = 4


def _does_not_fit(source: str, given: Mapping[str, Shape], params, problems: List[str]) -> str:
    """A few sentences: how many problems, what the checkpoint (`given`: key -> shape) and the
    network look like, the registered models the checkpoint most likely is, and a handful of
    the problems, one of each kind first."""
    theirs = shape_of_state(given)
    ours = shape_of_state({k: tuple(p.shape) for k, p in params.items()})
    message = "checkpoint%s does not fit the network (%d problem(s))." % (source, len(problems))
    if theirs is None:
        message += " The checkpoint is not a timm ViT (it has no patch_embed.proj.weight [C, 3, p, p])."
    else:
        message += " The checkpoint: %s" % theirs.text()
        if ours is None or theirs.architecture != ours.architecture:
            names = likely_models(theirs)
            message += " (%s)" % ("likely %s" % " or ".join(names) if names else "no registered model has this shape")
        message += "."
    if ours is not None:
        message += " The network: %s." % ours.text()
    kinds = [[p for p in problems if p.startswith(kind)] for kind in ("missing", "unexpected", "shape", "dtype")]
    examples = [p for group in itertools.zip_longest(*kinds) for p in group if p][:EXAMPLES]
    message += " E.g. %s" % "; ".join(examples)
    if len(problems) > EXAMPLES:
        message += "; and %d more (all of them: --verbose, or this error's .details)" % (len(problems) - EXAMPLES)
    return message


def _as_arrays(path_or_state_dict) -> Dict[str, np.ndarray]:
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        return read_state_dict(path_or_state_dict)
    if not isinstance(path_or_state_dict, Mapping):
        raise CheckpointError("load_pretrained expects a file path or a dict of arrays, got %s"
                              % type(path_or_state_dict).__name__)
    arrays = {}
    for name, value in path_or_state_dict.items():
        if isinstance(value, Tensor):  # also Parameter
            value = (value.astype(ms.float32) if value.dtype == ms.bfloat16 else value).asnumpy()
        if not isinstance(value, np.ndarray):
            raise CheckpointError("state dict entry %r is a %s, not an array" % (name, type(value).__name__))
        arrays[name] = value
    return arrays


def _source_name(path_or_state_dict) -> str:
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        return " " + os.fspath(path_or_state_dict)
    return ""


def _skip_other_classifier(state: Dict[str, np.ndarray], params, report: LoadReport) -> None:
    """Drop head.* / head_dist.* from `state` when head.weight's class count differs; when the
    checkpoint has no classifier at all (a feature extractor, as DINOv2's), the network keeps its own."""
    if "head.weight" in params and not any(k.startswith(("head.", "head_dist.")) for k in state):
        for key in CLASSIFIER_KEYS:
            if key in params:
                report.skipped[key] = ((), tuple(params[key].shape))
        logger.warning("the checkpoint has no classifier (head.*): the network's classifier keeps its initialisation")
        return
    if "head.weight" not in state or "head.weight" not in params:
        return
    theirs, ours = state["head.weight"].shape, tuple(params["head.weight"].shape)
    if len(theirs) != 2 or len(ours) != 2 or theirs[0] == ours[0]:
        return
    for key in CLASSIFIER_KEYS:
        if key in state and key in params:
            report.skipped[key] = (state.pop(key).shape, tuple(params[key].shape))
    logger.warning("checkpoint classifier has %d classes (head.weight %s), the network %d (head.weight %s): "
                   "skipped %s; they keep the network's initialisation",
                   theirs[0], theirs, ours[0], ours, ", ".join(report.skipped))


def _resize_position_embedding(net, state: Dict[str, np.ndarray], params, report: LoadReport) -> None:
    """Resize state['pos_embed'] to the network's patch grid when only the token count differs."""
    if "pos_embed" not in state or "pos_embed" not in params:
        return
    theirs, ours = state["pos_embed"].shape, tuple(params["pos_embed"].shape)
    if theirs == ours or len(theirs) != 3 or len(ours) != 3 or theirs[2] != ours[2]:
        return
    prefix = getattr(net, "pos_embed_prefix_tokens", None)
    grid = getattr(getattr(net, "patch_embed", None), "grid_size", None)
    if prefix is None or grid is None:
        return  # not a ViT-like network: the shape check reports the mismatch
    try:
        resized = resize_pos_embed(state["pos_embed"], prefix, grid)
    except CheckpointError as error:
        logger.warning("cannot resize pos_embed %s to %s: %s", theirs, ours, error)
        return
    if resized.shape == ours:
        state["pos_embed"] = resized
        report.resized["pos_embed"] = (theirs, ours)


def _mismatch(name: str, array: np.ndarray, param) -> str:
    """'' if `array` can be loaded into `param`, else a one-line reason."""
    shape = tuple(param.shape)
    if array.shape != shape:
        return "shape mismatch: %s: checkpoint %s vs network %s" % (name, array.shape, shape)
    param_is_float = param.dtype in (ms.float16, ms.float32, ms.float64, ms.bfloat16)
    if param_is_float != np.issubdtype(array.dtype, np.floating):
        return "dtype mismatch: %s: checkpoint %s vs network %s" % (name, array.dtype, param.dtype)
    return ""
