"""Readers for the non-torch formats: safetensors, NumPy .npz, MindSpore .ckpt.
Each returns {name: np.ndarray}; bfloat16 becomes float32."""
import os
from typing import Dict

import mindspore as ms
import numpy as np
import safetensors
from safetensors import safe_open

from .dtypes import bfloat16_bits_to_float32
from .errors import CheckpointError


def read_safetensors(path: str) -> Dict[str, np.ndarray]:
    """safetensors file -> arrays. NumPy has no bfloat16, so BF16 tensors are
    decoded from their raw bytes."""
    try:
        with safe_open(path, framework="numpy") as handle:
            dtypes = {name: handle.get_slice(name).get_dtype() for name in handle.keys()}
            arrays = {name: handle.get_tensor(name) for name, dtype in dtypes.items() if dtype != "BF16"}
        if "BF16" in dtypes.values():
            with open(path, "rb") as stream:
                for name, spec in safetensors.deserialize(stream.read()):
                    if spec["dtype"] == "BF16":
                        bits = np.frombuffer(bytes(spec["data"]), dtype="<u2").reshape(spec["shape"])
                        arrays[name] = bfloat16_bits_to_float32(bits)
    except (safetensors.SafetensorError, OSError, TypeError, ValueError) as error:
        raise CheckpointError("%s: not a readable safetensors file: %s" % (path, error)) from error
    return {name: arrays[name] for name in dtypes}


def read_npz(path: str) -> Dict[str, np.ndarray]:
    """.npz archive -> arrays (object arrays are refused: they would need pickle)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError) as error:
        raise CheckpointError("%s: not a readable .npz archive: %s" % (path, error)) from error


def read_mindspore_ckpt(path: str) -> Dict[str, np.ndarray]:
    """MindSpore .ckpt -> arrays, including scalars stored with append_dict."""
    try:
        params = ms.load_checkpoint(os.fspath(path))
    except (ValueError, RuntimeError, OSError, TypeError) as error:
        raise CheckpointError("%s: not a readable MindSpore checkpoint: %s" % (path, error)) from error
    arrays = {}
    for name, value in params.items():
        if isinstance(value, str):
            arrays[name] = np.asarray(value)
        elif value.dtype == ms.bfloat16:
            arrays[name] = value.astype(ms.float32).asnumpy()
        else:
            arrays[name] = value.asnumpy()
    return arrays
