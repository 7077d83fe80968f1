"""read_state_dict: any supported checkpoint file -> {timm key: np.ndarray}."""
import logging
import os
import zipfile
from typing import Dict, Mapping

import numpy as np

from .dtypes import widen_half
from .errors import CheckpointError
from .pth_reader import read_pth
from .readers import read_mindspore_ckpt, read_npz, read_safetensors
from .training_state import EMA_PREFIX, USE_EMA_HINT

logger = logging.getLogger(__name__)

SUPPORTED_FORMATS = ("PyTorch torch.save (.pth/.pt/.bin, zip or legacy), safetensors, NumPy .npz, "
                     "MindSpore .ckpt")

# Where training scripts put the weights: DeiT {'model': ...}, timm {'state_dict': ...},
# EMA copies under 'model_ema' / 'state_dict_ema'.
_WEIGHT_KEYS = ("model", "state_dict")
_EMA_KEYS = ("model_ema", "state_dict_ema")


def detect_format(path) -> str:
    """'torch', 'safetensors', 'npz' or 'mindspore', decided by the content
    (the .ckpt extension only for MindSpore, whose protobuf has no signature)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError("checkpoint file not found: %s" % path)
    with open(path, "rb") as stream:
        head = stream.read(9)
    if not head:
        raise CheckpointError("%s: file is empty" % path)
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(path)
    if head.startswith(b"\x80"):
        return "torch"  # pickle protocol >= 2: legacy torch.save stream
    if head[8:9] == b"{":
        return "safetensors"  # 8-byte header length, then the JSON header
    if path.endswith(".ckpt"):
        return "mindspore"
    raise CheckpointError("%s: unrecognised checkpoint content (starts with %r); supported: %s"
                          % (path, head[:8], SUPPORTED_FORMATS))


def _zip_kind(path: str) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as error:
        raise CheckpointError("%s: looks like a zip archive (torch.save or .npz) but is truncated or corrupt: %s"
                              % (path, error)) from error
    if any(name.endswith("data.pkl") for name in names):
        return "torch"
    if names and all(name.endswith(".npy") for name in names):
        return "npz"
    raise CheckpointError("%s: zip archive is neither a torch.save file nor an .npz (entries: %s)"
                          % (path, ", ".join(names[:5])))


_READERS = {"torch": read_pth, "safetensors": read_safetensors, "npz": read_npz,
            "mindspore": read_mindspore_ckpt}


def read_state_dict(path, use_ema: bool = False) -> Dict[str, np.ndarray]:
    """Checkpoint file -> {name: array}. Unwraps {'model': sd}, {'state_dict': sd}
    and EMA wrappers (preferred when use_ema), strips a DataParallel 'module.'
    prefix, widens float16/bfloat16 to float32; other dtypes are kept."""
    path = os.fspath(path)
    content = _READERS[detect_format(path)](path)
    try:
        state = unwrap_state_dict(content, use_ema)
    except CheckpointError as error:
        raise CheckpointError("%s: %s" % (path, error)) from None
    return {name: widen_half(array) for name, array in state.items()}


def unwrap_state_dict(content, use_ema: bool = False) -> Dict[str, np.ndarray]:
    """Find the tensors inside a loaded checkpoint object (see read_state_dict)."""
    wrapper_keys = _EMA_KEYS + _WEIGHT_KEYS if use_ema else _WEIGHT_KEYS + _EMA_KEYS
    took_ema, original = False, content
    while isinstance(content, Mapping) and not _is_array_dict(content):
        key = next((k for k in wrapper_keys if isinstance(content.get(k), Mapping)), None)
        if key is None:
            raise CheckpointError(_why_not_a_state_dict(content, wrapper_keys))
        took_ema = took_ema or key in _EMA_KEYS
        content = content[key]
    if not isinstance(content, Mapping):
        raise CheckpointError("the checkpoint holds a %s, not a dict of tensors" % type(content).__name__)
    if use_ema and not took_ema and not any(str(k).startswith(EMA_PREFIX) for k in content):
        raise CheckpointError("use_ema=True but the checkpoint has no %s entry and no %s<weight> entries"
                              % (" or ".join(_EMA_KEYS), EMA_PREFIX))
    if not took_ema and _has_ema_wrapper(original):
        logger.warning("took the checkpoint's live weights; it also has an EMA copy (%s): %s takes it",
                       " or ".join(k for k in _EMA_KEYS if isinstance(original.get(k), Mapping)), USE_EMA_HINT)
    return _strip_prefix(dict(content), "module.")


def _has_ema_wrapper(content) -> bool:
    return isinstance(content, Mapping) and any(isinstance(content.get(k), Mapping) for k in _EMA_KEYS)


def _is_array_dict(content: Mapping) -> bool:
    return len(content) > 0 and all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in content.items())


def _why_not_a_state_dict(content: Mapping, wrapper_keys) -> str:
    others = ["%r (%s)" % (k, type(v).__name__) for k, v in content.items()
              if not (isinstance(k, str) and isinstance(v, np.ndarray))]
    if len(others) < len(content):
        return "entries that are not named tensors: %s" % ", ".join(others[:20])
    return "no tensors found: the checkpoint holds %s, none of them a state dict (looked for %s)" % (
        ", ".join(others[:20]) or "nothing", ", ".join(wrapper_keys))


def _strip_prefix(state: Dict[str, np.ndarray], prefix: str) -> Dict[str, np.ndarray]:
    if all(name.startswith(prefix) for name in state):
        return {name[len(prefix):]: array for name, array in state.items()}
    return state
