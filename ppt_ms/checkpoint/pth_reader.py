"""Read files written by torch.save (zip format and the legacy pickle stream) without torch.

Zip format (torch >= 1.6): `<name>/data.pkl` is the pickle, `<name>/data/<key>`
the raw bytes of each storage, `<name>/byteorder` their byte order.
Legacy format (`_use_new_zipfile_serialization=False`): five pickles in a row
(magic number, protocol 1001, system info, the object, the list of storage
keys), then for each key an int64 element count followed by the raw
little-endian elements.
"""
import io
import os
import pickle
import struct
import zipfile
import zlib
from typing import Callable, Dict

import numpy as np

from .errors import CheckpointError
from .torch_pickle import RestrictedUnpickler, StorageRef, replace_tensors, storage_array, tensor_array

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001

# What a truncated or corrupt file makes zipfile/pickle/struct raise.
_CORRUPTION_ERRORS = (zipfile.BadZipFile, zlib.error, pickle.UnpicklingError, EOFError, ValueError, TypeError,
                      KeyError, IndexError, AttributeError, struct.error, OverflowError, RecursionError,
                      UnicodeDecodeError, MemoryError, OSError)


def read_pth(path) -> object:
    """torch.save file -> the saved object (dicts/lists/scalars) with every
    tensor as a NumPy array (bfloat16 widened to float32). Raises
    UnsafeCheckpointError for pickles naming other globals and
    CheckpointError, naming the file, for truncated or corrupt files."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError("checkpoint file not found: %s" % path)
    try:
        if zipfile.is_zipfile(path):
            return _read_zip(path)
        return _read_legacy(path)
    except CheckpointError as error:
        raise type(error)("%s: %s" % (path, error)) from None
    except _CORRUPTION_ERRORS as error:
        raise CheckpointError("%s: not a readable PyTorch checkpoint (truncated or corrupt?): %s: %s"
                              % (path, type(error).__name__, error)) from error


def _materialize(tree, read_storage: Callable[[str], bytes], byteorder: str):
    """Attach storage bytes to the TensorRefs in `tree` (each storage read once)."""
    raw: Dict[str, bytes] = {}
    arrays: Dict[StorageRef, np.ndarray] = {}

    def to_array(ref):
        storage = ref.storage
        if storage not in arrays:
            if storage.key not in raw:
                raw[storage.key] = read_storage(storage.key)
            arrays[storage] = storage_array(storage, raw[storage.key], byteorder)
        return tensor_array(ref, arrays[storage])

    return replace_tensors(tree, to_array)


def _read_zip(path: str):
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        pickles = [name for name in names if name.endswith("/data.pkl") and name.count("/") == 1]
        if len(pickles) != 1:
            raise CheckpointError("zip archive without a single '<name>/data.pkl' record: not a torch.save file")
        prefix = pickles[0][:-len("data.pkl")]
        byteorder = "little"
        if prefix + "byteorder" in names:
            byteorder = archive.read(prefix + "byteorder").decode("ascii").strip()
            if byteorder not in ("little", "big"):
                raise CheckpointError("unknown byteorder record %r" % byteorder)
        tree = RestrictedUnpickler(io.BytesIO(archive.read(pickles[0]))).load()

        def read_storage(key: str) -> bytes:
            name = "%sdata/%s" % (prefix, key)
            if name not in names:
                raise CheckpointError("storage record %s is missing from the archive" % name)
            return archive.read(name)

        return _materialize(tree, read_storage, byteorder)


def _read_exactly(stream, count: int, what: str) -> bytes:
    remaining = os.fstat(stream.fileno()).st_size - stream.tell()
    if count > remaining:
        raise CheckpointError("file ends inside %s (%d of %d bytes present)" % (what, max(remaining, 0), count))
    return stream.read(count)


def _read_legacy(path: str):
    with open(path, "rb") as stream:
        if RestrictedUnpickler(stream).load() != LEGACY_MAGIC_NUMBER:
            raise CheckpointError("neither a zip archive nor a legacy torch.save stream (magic number differs)")
        protocol = RestrictedUnpickler(stream).load()
        if protocol != LEGACY_PROTOCOL_VERSION:
            raise CheckpointError("unsupported legacy torch.save protocol %r" % (protocol,))
        RestrictedUnpickler(stream).load()  # system info; the storages below are always little-endian
        unpickler = RestrictedUnpickler(stream)
        tree = unpickler.load()
        keys = RestrictedUnpickler(stream).load()
        if not isinstance(keys, list) or set(keys) != set(unpickler.storage_types):
            raise CheckpointError("legacy storage key list %.200r does not match the storages the pickle uses"
                                  % (keys,))
        raw: Dict[str, bytes] = {}
        for key in keys:
            (numel,) = struct.unpack("<q", _read_exactly(stream, 8, "the size of storage %s" % key))
            itemsize = unpickler.storage_types[key].dtype.itemsize
            if numel < 0:
                raise CheckpointError("storage %s has negative size %d" % (key, numel))
            raw[key] = _read_exactly(stream, numel * itemsize, "storage %s" % key)
    return _materialize(tree, raw.__getitem__, "little")
