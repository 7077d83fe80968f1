"""save_checkpoint_atomic: a .ckpt appears complete or not at all.

mindspore.save_checkpoint deletes an existing file before writing the new one,
so a crash or a full disk mid-write loses both. Here the checkpoint is written
into a private staging directory next to `path`, flushed to disk, and moved
over `path` with os.replace (atomic within one file system).
"""
import numbers
import os
import shutil
import tempfile
from typing import Dict, Mapping, Optional

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor

from .errors import CheckpointError


def save_checkpoint_atomic(params_or_net, path, extra: Optional[Mapping[str, object]] = None) -> str:
    """Write a MindSpore .ckpt of a Cell or of {name: array/Tensor/Parameter} to
    `path`, atomically. `extra` holds scalars (epoch, step, ...) stored next to
    the parameters. On any failure the previous file at `path` is untouched, no
    temporary file is left behind, and CheckpointError names `path`.
    Returns `path`."""
    path = os.fspath(path)
    if not path.endswith(".ckpt"):
        raise CheckpointError("checkpoint path must end with .ckpt: %s" % path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CheckpointError("cannot write checkpoint %s: directory %s does not exist" % (path, directory))
    save_obj = _save_object(params_or_net)
    names = save_obj.parameters_dict().keys() if isinstance(save_obj, ms.nn.Cell) else save_obj.keys()
    append = _scalars(extra, set(names))

    staging = tempfile.mkdtemp(prefix=".%s." % os.path.basename(path), suffix=".partial", dir=directory)
    try:
        staged = os.path.join(staging, "checkpoint.ckpt")
        ms.save_checkpoint(save_obj, staged, append_dict=append)
        _fsync(staged)
        os.replace(staged, path)
        _fsync(directory)
    except Exception as error:
        raise CheckpointError("could not write checkpoint %s (the previous file, if any, is unchanged): %s: %s"
                              % (path, type(error).__name__, error)) from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def _save_object(params_or_net):
    """A Cell as is; a mapping as {name: ndarray or Parameter} (what save_checkpoint accepts)."""
    if isinstance(params_or_net, ms.nn.Cell):
        return params_or_net
    if not isinstance(params_or_net, Mapping):
        raise CheckpointError("save_checkpoint_atomic expects a Cell or a dict of parameters, got %s"
                              % type(params_or_net).__name__)
    converted = {}
    for name, value in params_or_net.items():
        if isinstance(value, Parameter):
            converted[name] = value
        elif isinstance(value, Tensor):
            converted[name] = Parameter(value, name=name)
        elif isinstance(value, np.ndarray):
            converted[name] = np.ascontiguousarray(value)
        else:
            raise CheckpointError("cannot save entry %r: a %s, not an array, Tensor or Parameter"
                                  % (name, type(value).__name__))
    return converted


def _scalars(extra: Optional[Mapping[str, object]], parameter_names) -> Optional[Dict[str, object]]:
    if not extra:
        return None
    scalars = {}
    for key, value in extra.items():
        if not isinstance(key, str) or key in parameter_names:
            raise CheckpointError("extra key %r must be a string that is not a parameter name" % (key,))
        if not isinstance(value, (numbers.Real, np.bool_)):
            raise CheckpointError("extra[%r] must be an int, float or bool scalar, got %s"
                                  % (key, type(value).__name__))
        scalars[key] = value.item() if isinstance(value, np.generic) else value
    return scalars


def _fsync(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
