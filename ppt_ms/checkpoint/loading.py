"""load_pretrained: put a timm-named state dict into a MindSpore network, checking every key."""
import itertools
import logging
import os
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

import mindspore as ms
import numpy as np
from mindspore import Tensor

from .describe import likely_models, shape_of_state
from .errors import CheckpointError
from .layouts import MINDCV_ACTIVATION, MINDCV_NORM_EPS, layout_note, to_timm_names
from .pos_embed import resize_pos_embed
from .state_dict import read_state_dict
from .training_state import split_training_state

logger = logging.getLogger(__name__)

CLASSIFIER_KEYS = ("head.weight", "head.bias", "head_dist.weight", "head_dist.bias")
Shape = Tuple[int, ...]


@dataclass
class LoadReport:
    """What load_pretrained did. Shapes are (checkpoint, network)."""
    layout: Optional[str] = None  # another key layout it was read as (layouts.py), e.g. 'mindcv 0.3'
    training_state: Optional[str] = None  # the note of what training state was set aside (training_state.py)
    loaded: List[str] = field(default_factory=list)
    resized: Dict[str, Tuple[Shape, Shape]] = field(default_factory=dict)
    skipped: Dict[str, Tuple[Shape, Shape]] = field(default_factory=dict)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    ignored_scalars: List[str] = field(default_factory=list)

    def lines(self) -> List[str]:
        out = [line for line in (layout_note(self.layout), self.training_state) if line]
        out.append("loaded %d parameter(s)" % len(self.loaded))
        out += ["resized %s: %s -> %s" % (k, old, new) for k, (old, new) in self.resized.items()]
        out += ["skipped %s: checkpoint %s vs network %s" % (k, old or "none", new or "none")
                for k, (old, new) in self.skipped.items()]
        if self.missing:
            out.append("missing from checkpoint (kept initialisation): %s" % ", ".join(self.missing))
        if self.unexpected:
            out.append("not in the network (ignored): %s" % ", ".join(self.unexpected))
        if self.ignored_scalars:
            out.append("ignored bookkeeping scalars: %s" % ", ".join(self.ignored_scalars))
        return out


def load_pretrained(net: ms.nn.Cell, path_or_state_dict, strict: bool = True, use_ema: bool = False) -> LoadReport:
    """Copy checkpoint tensors into `net` by name (timm names == ppt_ms names).

    - training state (optimizer moments and counters, EMA copies, loss scale: training_state.py)
      is set aside with a one-line note; `use_ema` takes a training checkpoint's EMA weights;
    - mindcv's key layouts are renamed to timm's (layouts.py);
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
    params = net.parameters_dict()
    report = LoadReport()
    state, report.training_state = split_training_state(_as_arrays(path_or_state_dict, use_ema), use_ema, params)
    state, report.layout = to_timm_names(state)
    if report.training_state:
        logger.warning("%s", report.training_state)
    _warn_other_arithmetic(net, report.layout)
    given = {k: v.shape for k, v in state.items()}
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
    differences = theirs.differences(ours) if theirs is not None and ours is not None else None
    if differences == []:
        message += " The network has that shape too: names or dtypes differ."
    elif ours is not None:
        message += " The network: %s%s." % (ours.text(), "; they differ in %s" % ", ".join(differences)
                                               if differences else "")
    kinds = [[p for p in problems if p.startswith(kind)] for kind in ("missing", "unexpected", "shape", "dtype")]
    examples = [p for group in itertools.zip_longest(*kinds) for p in group if p][:EXAMPLES]
    message += " E.g. %s" % "; ".join(examples)
    if len(problems) > EXAMPLES:
        message += "; and %d more (all of them: --verbose, or this error's .details)" % (len(problems) - EXAMPLES)
    return message


def _warn_other_arithmetic(net, layout: Optional[str]) -> None:
    """mindcv's weights in a network whose GELU or LayerNorm eps is not mindcv's: the logits move
    (by 5.8e-4 on mindcv's vit_b_32_224), enough to change some top-1 decisions, so say so."""
    if not (layout or "").startswith("mindcv"):
        return
    ours = (getattr(net, "act_layer", MINDCV_ACTIVATION), getattr(net, "norm_eps", MINDCV_NORM_EPS))
    if ours != (MINDCV_ACTIVATION, MINDCV_NORM_EPS):
        logger.warning("these are mindcv weights (%s key layout), trained with GELU %s and LayerNorm eps %g; the "
                       "network computes GELU %s and eps %g, so its outputs differ from mindcv's: build mindcv's "
                       "model name (e.g. vit_b_16_224) or pass act_layer='%s', norm_eps=%g", layout,
                       MINDCV_ACTIVATION, MINDCV_NORM_EPS, ours[0], ours[1], MINDCV_ACTIVATION, MINDCV_NORM_EPS)


def _as_arrays(path_or_state_dict, use_ema: bool = False) -> Dict[str, np.ndarray]:
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        return read_state_dict(path_or_state_dict, use_ema=use_ema)
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
    """One rule for a classifier that does not fit: the checkpoint has none (a feature extractor,
    as DINOv2's), the network has none (num_classes 0), or they have other class counts. Each is
    a warning; the checkpoint's head.* / head_dist.* are set aside and the network's, if any, keep
    their initialisation."""
    theirs, ours = state.get("head.weight"), params.get("head.weight")
    if ours is not None and not any(k.startswith(("head.", "head_dist.")) for k in state):
        for key in CLASSIFIER_KEYS:
            if key in params:
                report.skipped[key] = ((), tuple(params[key].shape))
        logger.warning("the checkpoint has no classifier (head.*): the network's classifier keeps its initialisation")
        return
    has_classifier = any(k.startswith(("head.", "head_dist.")) for k in params)
    if theirs is None or theirs.ndim != 2 or (has_classifier and (ours is None or theirs.shape[0] == ours.shape[0])):
        return  # nothing to skip, or a classifier under other names (a CPU layout): the key check reports it
    for key in CLASSIFIER_KEYS:
        if key in state and (not has_classifier or key in params):
            report.skipped[key] = (state.pop(key).shape, tuple(params[key].shape) if key in params else ())
    if not has_classifier:
        logger.warning("the checkpoint's classifier (head.weight %s, %d classes) is not used: the network has none "
                       "(num_classes 0, it returns its embedding); skipped %s", theirs.shape, theirs.shape[0],
                       ", ".join(report.skipped))
        return
    logger.warning("checkpoint classifier has %d classes (head.weight %s), the network %d (head.weight %s): "
                   "skipped %s; they keep the network's initialisation",
                   theirs.shape[0], theirs.shape, ours.shape[0], tuple(ours.shape), ", ".join(report.skipped))


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
