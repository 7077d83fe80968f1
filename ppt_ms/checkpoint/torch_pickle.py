"""Unpickling PyTorch checkpoints without torch and without running code from the file.

`torch.save` pickles every tensor as a call
`torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` whose
storage is a persistent id `('storage', torch.<Type>Storage, key, location,
numel[, view])`; the storage bytes live outside the pickle. The unpickler here
resolves exactly those globals to inert stand-ins that only record their
arguments, so loading yields plain dicts/lists whose tensors are `TensorRef`
records; `tensor_array` turns a record plus the storage bytes into a NumPy
array. Any other global (os.system, builtins.eval, a class, ...) raises
UnsafeCheckpointError from `find_class`, i.e. before it could be called.

The stand-ins are slotted, frozen objects that refuse __setstate__: a pickle
BUILD opcode aimed at one of them fails instead of altering it for later loads.
"""
import collections
import pickle
import types
from dataclasses import dataclass
from typing import Any, Callable, Dict, Tuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .dtypes import bfloat16_bits_to_float32
from .errors import CheckpointError, UnsafeCheckpointError


def _refuses_build(cls):
    """Replace the __setstate__ that frozen slotted dataclasses get (it would let
    a pickle BUILD opcode overwrite the fields) by one that raises."""
    def __setstate__(self, state):
        raise CheckpointError("checkpoint pickle tries to modify a %s" % type(self).__name__)
    cls.__setstate__ = __setstate__
    return cls


@_refuses_build
@dataclass(frozen=True, slots=True)
class StorageType:
    """Stand-in for torch.<name>: the element type of a storage.
    bfloat16 storages are read as their uint16 bit patterns."""
    name: str
    dtype: np.dtype
    bfloat16: bool = False


STORAGE_TYPES: Dict[str, StorageType] = {t.name: t for t in (
    StorageType("FloatStorage", np.dtype(np.float32)),
    StorageType("DoubleStorage", np.dtype(np.float64)),
    StorageType("HalfStorage", np.dtype(np.float16)),
    StorageType("BFloat16Storage", np.dtype(np.uint16), bfloat16=True),
    StorageType("LongStorage", np.dtype(np.int64)),
    StorageType("IntStorage", np.dtype(np.int32)),
    StorageType("ShortStorage", np.dtype(np.int16)),
    StorageType("CharStorage", np.dtype(np.int8)),
    StorageType("ByteStorage", np.dtype(np.uint8)),
    StorageType("BoolStorage", np.dtype(np.bool_)),
)}


@_refuses_build
@dataclass(frozen=True, slots=True)
class StorageRef:
    """`numel` elements of `storage_type`, starting at element `offset` of the
    serialized storage named `key` (offset > 0 only for legacy storage views)."""
    key: str
    storage_type: StorageType
    numel: int
    offset: int = 0


@_refuses_build
@dataclass(frozen=True, slots=True)
class TensorRef:
    """A tensor as torch pickles it: a strided view (element units) into a storage."""
    storage: StorageRef
    offset: int
    size: Tuple[int, ...]
    stride: Tuple[int, ...]


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _counts(value, what: str) -> Tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or not all(_is_count(v) for v in value):
        raise CheckpointError("tensor %s must be a tuple of non-negative ints, got %r" % (what, value))
    return tuple(value)


class _RebuildTensor:
    """Stand-in for torch._utils._rebuild_tensor_v2: records, never executes."""
    __slots__ = ()

    def __call__(self, storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                 metadata=None) -> TensorRef:
        if not isinstance(storage, StorageRef):
            raise CheckpointError("_rebuild_tensor_v2 expects a storage persistent id, got %r" % (storage,))
        if not _is_count(storage_offset):
            raise CheckpointError("tensor storage offset must be a non-negative int, got %r" % (storage_offset,))
        size, stride = _counts(size, "size"), _counts(stride, "stride")
        if len(size) != len(stride):
            raise CheckpointError("tensor size %s and stride %s have different lengths" % (size, stride))
        return TensorRef(storage, storage_offset, size, stride)


class _RebuildParameter:
    """Stand-in for torch._utils._rebuild_parameter(_with_state): a Parameter is its data."""
    __slots__ = ()

    def __call__(self, data, requires_grad=False, backward_hooks=None, state=None) -> TensorRef:
        if not isinstance(data, TensorRef):
            raise CheckpointError("_rebuild_parameter expects a tensor, got %r" % (type(data).__name__,))
        return data


# Everything a checkpoint pickle may name. argparse.Namespace (the `args` entry
# of DeiT/timm training checkpoints) becomes an inert SimpleNamespace.
ALLOWED_GLOBALS: Dict[Tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _RebuildTensor(),
    ("torch._utils", "_rebuild_parameter"): _RebuildParameter(),
    ("torch._utils", "_rebuild_parameter_with_state"): _RebuildParameter(),
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("argparse", "Namespace"): types.SimpleNamespace,
    **{("torch", name): storage_type for name, storage_type in STORAGE_TYPES.items()},
}


def storage_ref_from_id(pid) -> StorageRef:
    """Persistent id -> StorageRef. Zip format: ('storage', type, key, location,
    numel); legacy format adds view metadata: None or (view_key, offset, numel)."""
    if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
        raise CheckpointError("unsupported persistent id in checkpoint pickle: %.200r" % (pid,))
    _, storage_type, key, _location, numel = pid[:5]
    if not isinstance(storage_type, StorageType) or not isinstance(key, str) or not _is_count(numel):
        raise CheckpointError("malformed storage persistent id: %.200r" % (pid,))
    view = pid[5] if len(pid) == 6 else None
    if view is None:
        return StorageRef(key, storage_type, numel)
    if not (isinstance(view, tuple) and len(view) == 3 and _is_count(view[1]) and _is_count(view[2])):
        raise CheckpointError("malformed storage view metadata: %.200r" % (view,))
    _, view_offset, view_numel = view
    if view_offset + view_numel > numel:
        raise CheckpointError("storage view [%d, %d) exceeds storage %s of %d elements"
                              % (view_offset, view_offset + view_numel, key, numel))
    return StorageRef(key, storage_type, view_numel, view_offset)


class RestrictedUnpickler(pickle.Unpickler):
    """pickle.Unpickler that resolves only ALLOWED_GLOBALS and maps storage
    persistent ids to StorageRef records (remembered in `storage_types`)."""

    def __init__(self, file):
        super().__init__(file)
        self.storage_types: Dict[str, StorageType] = {}

    def find_class(self, module, name):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                "refusing to load global '%s.%s' from the checkpoint pickle: only torch's tensor-rebuild "
                "functions, storage types, collections.OrderedDict and argparse.Namespace are allowed "
                "(nothing from the file was executed)" % (module, name)) from None

    def persistent_load(self, pid):
        ref = storage_ref_from_id(pid)
        known = self.storage_types.setdefault(ref.key, ref.storage_type)
        if known != ref.storage_type:
            raise CheckpointError("storage %s is declared as both %s and %s"
                                  % (ref.key, known.name, ref.storage_type.name))
        return ref


def storage_array(ref: StorageRef, raw: bytes, byteorder: str) -> np.ndarray:
    """The elements of `ref` inside the raw bytes of its serialized storage."""
    dtype = ref.storage_type.dtype.newbyteorder("<" if byteorder == "little" else ">")
    needed = (ref.offset + ref.numel) * dtype.itemsize
    if len(raw) < needed:
        raise CheckpointError("storage %s holds %d bytes but its tensors need %d (file truncated?)"
                              % (ref.key, len(raw), needed))
    return np.frombuffer(raw, dtype=dtype, count=ref.numel, offset=ref.offset * dtype.itemsize)


def tensor_array(ref: TensorRef, storage: np.ndarray) -> np.ndarray:
    """Copy the strided view `ref` out of `storage` (1-D) into a native-order
    array; bfloat16 becomes float32. Out-of-range views raise, never read past."""
    count = int(np.prod(ref.size, dtype=np.int64))
    if count > storage.size:
        raise CheckpointError("tensor of size %s has more elements than its storage %s (%d): overlapping "
                              "views are not supported" % (ref.size, ref.storage.key, storage.size))
    if count == 0:
        data = np.zeros(ref.size, dtype=storage.dtype.newbyteorder("="))
    else:
        last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
        if last >= storage.size:
            raise CheckpointError("tensor (offset %d, size %s, stride %s) reaches element %d of storage %s "
                                  "which has %d" % (ref.offset, ref.size, ref.stride, last, ref.storage.key,
                                                    storage.size))
        itemsize = storage.dtype.itemsize
        view = as_strided(storage[ref.offset:], shape=ref.size, strides=[s * itemsize for s in ref.stride],
                          writeable=False)
        data = np.array(view, dtype=storage.dtype.newbyteorder("="), order="C")
    if ref.storage.storage_type.bfloat16:
        return bfloat16_bits_to_float32(data)
    return data


def replace_tensors(tree, to_array: Callable[[TensorRef], np.ndarray]):
    """Return `tree` (nested dicts/lists/tuples) with every TensorRef replaced by to_array(ref)."""
    if isinstance(tree, TensorRef):
        return to_array(tree)
    if isinstance(tree, dict):
        rebuilt = collections.OrderedDict() if isinstance(tree, collections.OrderedDict) else {}
        for key, value in tree.items():
            rebuilt[key] = replace_tensors(value, to_array)
        return rebuilt
    if isinstance(tree, (list, tuple)):
        return type(tree)(replace_tensors(value, to_array) for value in tree)
    return tree
