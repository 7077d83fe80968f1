"""The torch-free .pth reader: real and hand-built torch.save files, hostile pickles, corrupt files.

The .pth files are written here without torch: a pickler that emits the same
opcodes and globals as torch.save (checked byte for byte against the real
conformance file), and the zip / legacy layouts around it.
"""
import argparse
import collections
import io
import os
import pickle
import struct
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers.conformance_data import FULL as CONFORMANCE
from ppt_ms.checkpoint import CheckpointError, UnsafeCheckpointError, read_pth, read_state_dict

REAL_PTH = CONFORMANCE / "deit_tiny_patch16_224.pth"
REAL_SAFETENSORS = CONFORMANCE / "deit_tiny_patch16_224.safetensors"
needs_conformance = pytest.mark.skipif(not REAL_PTH.exists(), reason="conformance data not available")


# ----------------------------------------------------------------------------------------------
# A torch.save look-alike

class TorchGlobal:
    """Pickles as GLOBAL '<module> <name>' (one shared instance per name, so
    repeats become memo lookups exactly as with the real torch objects)."""
    _instances = {}

    def __new__(cls, module, name):
        if (module, name) not in cls._instances:
            instance = super().__new__(cls)
            instance.module, instance.name = module, name
            cls._instances[(module, name)] = instance
        return cls._instances[(module, name)]

    def __call__(self, *args):
        raise AssertionError("marker only")


class FakeStorage:
    """A torch storage: `bits` is the flat element array as written to disk
    (bfloat16 as uint16). `view` = (view_key, offset, numel) for legacy views."""

    def __init__(self, key, type_name, bits, view=None):
        self.key, self.type_name, self.bits, self.view = key, type_name, bits, view


class FakeTensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def __reduce_ex__(self, protocol):
        return (TorchGlobal("torch._utils", "_rebuild_tensor_v2"),
                (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict()))


class TorchLikePickler(pickle._Pickler):
    """Pure-Python pickler emitting torch's storage persistent ids."""
    dispatch = dict(pickle._Pickler.dispatch)

    def __init__(self, file, legacy=False):
        super().__init__(file, protocol=2)
        self.legacy = legacy
        self.storages = {}

    def _save_torch_global(self, obj):
        self.write(pickle.GLOBAL + ("%s\n%s\n" % (obj.module, obj.name)).encode("ascii"))
        self.memoize(obj)

    dispatch[TorchGlobal] = _save_torch_global

    def persistent_id(self, obj):
        if not isinstance(obj, FakeStorage):
            return None
        self.storages[obj.key] = obj
        pid = ("storage", TorchGlobal("torch", obj.type_name), obj.key, "cpu", obj.bits.size)
        return pid + (obj.view,) if self.legacy else pid


TYPE_NAMES = {"float32": "FloatStorage", "float64": "DoubleStorage", "float16": "HalfStorage",
              "int64": "LongStorage", "int32": "IntStorage", "int8": "CharStorage", "uint8": "ByteStorage",
              "bool": "BoolStorage"}


def contiguous_strides(shape):
    return tuple(int(np.prod(shape[d + 1:], dtype=np.int64)) for d in range(len(shape)))


def fake_tensor(array, key):
    """A contiguous tensor on its own storage."""
    storage = FakeStorage(key, TYPE_NAMES[array.dtype.name], np.ascontiguousarray(array).reshape(-1))
    return FakeTensor(storage, 0, array.shape, contiguous_strides(array.shape))


def fake_state(arrays):
    return {name: fake_tensor(array, str(i)) for i, (name, array) in enumerate(arrays.items())}


def pickle_bytes(obj, legacy=False):
    buffer = io.BytesIO()
    pickler = TorchLikePickler(buffer, legacy)
    pickler.dump(obj)
    return buffer.getvalue(), pickler.storages


def write_zip_pth(path, obj, byteorder="little", archive="archive", pickled=None):
    """torch.save's zip layout. `pickled` replaces data.pkl with given bytes."""
    data, storages = pickle_bytes(obj)
    dtype_order = "<" if byteorder == "little" else ">"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as out:
        out.writestr(archive + "/data.pkl", pickled if pickled is not None else data)
        out.writestr(archive + "/.format_version", "1")
        out.writestr(archive + "/.storage_alignment", "64")
        out.writestr(archive + "/byteorder", byteorder)
        for key, storage in storages.items():
            bits = storage.bits
            out.writestr("%s/data/%s" % (archive, key), bits.astype(bits.dtype.newbyteorder(dtype_order)).tobytes())
        out.writestr(archive + "/version", "3\n")
    return path


LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def write_legacy_pth(path, obj, main_pickle=None):
    """torch.save(..., _use_new_zipfile_serialization=False): magic, protocol,
    sys info, object, storage keys, then per storage int64 numel + raw bytes."""
    data, storages = pickle_bytes(obj, legacy=True)
    with open(path, "wb") as out:
        for header in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True,
                                            "type_sizes": {"short": 2, "int": 4, "long": 4}}):
            out.write(pickle.dumps(header, protocol=2))
        out.write(main_pickle if main_pickle is not None else data)
        out.write(pickle.dumps(list(storages), protocol=2))
        for storage in storages.values():
            out.write(struct.pack("<q", storage.bits.size))
            out.write(storage.bits.astype(storage.bits.dtype.newbyteorder("<")).tobytes())
    return path


# ----------------------------------------------------------------------------------------------
# The real file

@needs_conformance
def test_look_alike_writer_reproduces_the_real_torch_pickle_byte_for_byte():
    from safetensors.numpy import load_file
    with zipfile.ZipFile(REAL_PTH) as archive:
        real = archive.read("deit_tiny_patch16_224/data.pkl")
        real_names = archive.namelist()
    tensors = load_file(str(REAL_SAFETENSORS))
    # the key order of torch.save: the BINUNICODE strings directly before each rebuild call
    import pickletools
    ops = list(pickletools.genops(real))
    order = [ops[i - 2][1] for i, (op, arg, _) in enumerate(ops)
             if (op.name == "GLOBAL" and arg == "torch._utils _rebuild_tensor_v2") or
             (op.name == "BINGET" and arg == 2)]
    assert sorted(order) == sorted(tensors)
    ours, _ = pickle_bytes(fake_state({name: tensors[name] for name in order}))
    assert ours == real
    assert {n.split("/", 1)[1] for n in real_names} >= {"data.pkl", "byteorder", "version", "data/0"}


@needs_conformance
def test_real_pth_equals_safetensors_tensor_for_tensor():
    from safetensors.numpy import load_file
    expected = load_file(str(REAL_SAFETENSORS))
    got = read_pth(REAL_PTH)
    assert set(got) == set(expected)
    for name, array in expected.items():
        assert got[name].dtype == array.dtype and got[name].shape == array.shape, name
        assert np.array_equal(got[name], array), name
    via_state_dict = read_state_dict(REAL_PTH)
    assert all(np.array_equal(via_state_dict[k], expected[k]) for k in expected)


# ----------------------------------------------------------------------------------------------
# Hand-built files: dtypes, views, wrappers, legacy format

# bfloat16 bit patterns and the float32 values they denote
BF16_BITS = np.array([[0x3F80, 0xC020, 0x3E20], [0x43C0, 0x8000, 0x7F7F]], np.uint16)
BF16_VALUES = np.array([[1.0, -2.5, 0.15625], [384.0, -0.0, 3.3895313892515355e38]], np.float32)


def dtype_cases():
    rng = np.random.default_rng(0)
    return {
        "f32": rng.standard_normal((3, 4)).astype(np.float32),
        "f64": rng.standard_normal(5),
        "f16": rng.standard_normal((2, 3)).astype(np.float16),
        "i64": np.array([[-(2 ** 40), 0, 7]], np.int64),
        "i32": np.array([-5, 2 ** 30], np.int32),
        "i8": np.array([-128, 127], np.int8),
        "u8": np.array([0, 255], np.uint8),
        "bool": np.array([True, False, True]),
        "scalar": np.array(3.5, np.float32),
    }


@pytest.mark.parametrize("writer", [write_zip_pth, write_legacy_pth])
def test_every_dtype_reads_back_exactly(tmp_path, writer):
    arrays = dtype_cases()
    state = fake_state(arrays)
    state["bf16"] = FakeTensor(FakeStorage("bf", "BFloat16Storage", BF16_BITS.reshape(-1)), 0, (2, 3), (3, 1))
    got = read_pth(writer(tmp_path / "m.pth", state))
    for name, array in arrays.items():
        assert got[name].dtype == array.dtype and np.array_equal(got[name], array), name
    assert got["bf16"].dtype == np.float32 and np.array_equal(got["bf16"], BF16_VALUES)
    assert np.signbit(got["bf16"][1, 1])

    widened = read_state_dict(tmp_path / "m.pth")
    assert widened["f16"].dtype == np.float32
    assert np.array_equal(widened["f16"], arrays["f16"].astype(np.float32))
    assert widened["i64"].dtype == np.int64 and widened["bool"].dtype == np.bool_
    assert widened["f64"].dtype == np.float64


def test_big_endian_archive(tmp_path):
    arrays = {"w": np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5, "n": np.array([1, -2], np.int64)}
    got = read_pth(write_zip_pth(tmp_path / "be.pth", fake_state(arrays), byteorder="big"))
    for name, array in arrays.items():
        assert got[name].dtype == array.dtype and np.array_equal(got[name], array)


def test_views_with_offset_and_stride_share_one_storage(tmp_path):
    flat = np.arange(24, dtype=np.float32) * 0.5
    storage = FakeStorage("0", "FloatStorage", flat)
    transposed = FakeTensor(storage, 2, (4, 3), (1, 4))      # element [i, j] = flat[2 + i + 4 j]
    every_other = FakeTensor(storage, 1, (2, 5), (10, 2))    # element [i, j] = flat[1 + 10 i + 2 j]
    tail = FakeTensor(storage, 20, (4,), (1,))
    got = read_pth(write_zip_pth(tmp_path / "v.pth", {"t": transposed, "e": every_other, "tail": tail}))
    expected_t = np.array([[flat[2 + i + 4 * j] for j in range(3)] for i in range(4)])
    expected_e = np.array([[flat[1 + 10 * i + 2 * j] for j in range(5)] for i in range(2)])
    assert np.array_equal(got["t"], expected_t)
    assert np.array_equal(got["e"], expected_e)
    assert np.array_equal(got["tail"], flat[20:])
    assert got["t"].flags.c_contiguous and got["t"].flags.writeable


def test_legacy_storage_view_metadata(tmp_path):
    flat = np.arange(10, dtype=np.int64)
    view = FakeStorage("root", "LongStorage", flat, view=("view", 4, 5))
    got = read_pth(write_legacy_pth(tmp_path / "l.pth", {"v": FakeTensor(view, 1, (2, 2), (2, 1))}))
    assert np.array_equal(got["v"], np.array([[5, 6], [7, 8]]))  # view starts at 4, tensor at 1 within it


def test_training_checkpoint_wrappers_and_module_prefix(tmp_path):
    rng = np.random.default_rng(1)
    weights = {"a.weight": rng.standard_normal((2, 2)).astype(np.float32), "b": np.arange(3, dtype=np.int64)}
    ema = {"a.weight": np.ones((2, 2), np.float32), "b": np.zeros(3, np.int64)}
    namespace = argparse.Namespace(model="deit_small_patch16_224", lr=5e-4)
    deit_style = {"model": {"module." + k: fake_tensor(v, "m%d" % i) for i, (k, v) in enumerate(weights.items())},
                  "model_ema": {k: fake_tensor(v, "e%d" % i) for i, (k, v) in enumerate(ema.items())},
                  "epoch": 299, "args": namespace}
    path = write_zip_pth(tmp_path / "train.pth", deit_style)

    raw = read_pth(path)
    assert raw["epoch"] == 299 and raw["args"].model == "deit_small_patch16_224" and raw["args"].lr == 5e-4
    for use_ema, expected in ((False, weights), (True, ema)):
        got = read_state_dict(path, use_ema=use_ema)
        assert set(got) == set(expected)
        assert all(np.array_equal(got[k], expected[k]) for k in expected)

    timm_style = write_legacy_pth(tmp_path / "timm.pth", {"state_dict": fake_state(weights), "metric": 81.2})
    assert set(read_state_dict(timm_style)) == set(weights)
    only_ema = write_zip_pth(tmp_path / "ema.pth", {"model_ema": fake_state(ema)})
    assert np.array_equal(read_state_dict(only_ema)["a.weight"], ema["a.weight"])
    with pytest.raises(CheckpointError, match="use_ema"):
        read_state_dict(timm_style, use_ema=True)


def test_module_state_dict_with_metadata_attribute(tmp_path):
    """torch.save(model.state_dict()): an OrderedDict carrying a `_metadata` attribute (pickled with BUILD)."""
    arrays = {"blocks.0.norm1.weight": np.ones(4, np.float32), "blocks.0.norm1.bias": np.zeros(4, np.float32)}
    state = collections.OrderedDict(fake_state(arrays))
    state._metadata = collections.OrderedDict([("", {"version": 1}), ("blocks.0.norm1", {"version": 1})])
    data, _ = pickle_bytes(state)
    assert b"ccollections\nOrderedDict\n" in data and data.rstrip(b".").endswith(b"b")  # BUILD of _metadata
    got = read_state_dict(write_zip_pth(tmp_path / "sd.pth", state))
    assert list(got) == list(arrays)
    assert all(np.array_equal(got[k], arrays[k]) for k in arrays)


def test_no_state_dict_inside_names_what_was_found(tmp_path):
    path = write_zip_pth(tmp_path / "opt.pth", {"optimizer": [1, 2], "epoch": 3})
    with pytest.raises(CheckpointError, match=r"opt\.pth.*'optimizer'.*'epoch'"):
        read_state_dict(path)
    mixed = write_zip_pth(tmp_path / "mixed.pth", {"w": fake_tensor(np.ones(2, np.float32), "0"), "note": "x"})
    with pytest.raises(CheckpointError, match=r"not named tensors: 'note' \(str\)"):
        read_state_dict(mixed)


def test_archive_name_is_arbitrary(tmp_path):
    arrays = {"x": np.arange(4, dtype=np.float32)}
    got = read_pth(write_zip_pth(tmp_path / "a.pth", fake_state(arrays), archive="some_model"))
    assert np.array_equal(got["x"], arrays["x"])


# ----------------------------------------------------------------------------------------------
# Hostile pickles: refused before anything runs

class CreatesFileOnUnpickle:
    """An arbitrary class: its __setstate__ would create a file."""

    def __init__(self, marker):
        self.marker = marker

    def __setstate__(self, state):
        Path(state["marker"]).touch()


class Reduces:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def hostile_payloads(marker):
    """name -> (object that would create `marker` when unpickled, pattern of the global
    the pickle names; protocol 2 writes Python 2 module names such as __builtin__)."""
    return {
        "os.system": (Reduces(os.system, "touch '%s'" % marker), "system"),
        "builtins.eval": (Reduces(eval, "open(%r, 'w').close()" % str(marker)), r"(builtins|__builtin__)\.eval'"),
        "builtins.exec": (Reduces(exec, "open(%r, 'w').close()" % str(marker)), r"(builtins|__builtin__)\.exec'"),
        "subprocess.Popen": (Reduces(subprocess.Popen, ["touch", str(marker)]), r"(subprocess|commands)\.Popen'"),
        "arbitrary class": (CreatesFileOnUnpickle(str(marker)), "CreatesFileOnUnpickle"),
    }


def run_standard_unpickler(data):
    result = pickle.loads(data)
    if isinstance(result, subprocess.Popen):
        result.wait()


@pytest.mark.parametrize("kind", sorted(hostile_payloads("x")))
@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("layout", ["zip", "legacy", "nested in a state dict"])
def test_hostile_pickle_is_refused_and_nothing_runs(tmp_path, kind, protocol, layout):
    marker = tmp_path / "pwned"
    payload, global_name = hostile_payloads(marker)[kind]
    data = pickle.dumps(payload, protocol=protocol)
    if layout == "zip":
        path = write_zip_pth(tmp_path / "evil.pth", {}, pickled=data)
    elif layout == "legacy":
        path = write_legacy_pth(tmp_path / "evil.pth", {}, main_pickle=data)
    else:
        sd = {"ok": fake_tensor(np.ones(2, np.float32), "0"), "evil": payload}
        path = write_zip_pth(tmp_path / "evil.pth", {"model": sd})

    with pytest.raises(UnsafeCheckpointError, match=global_name) as refused:
        read_state_dict(path)
    assert str(path) in str(refused.value)
    assert not marker.exists()

    run_standard_unpickler(data)  # control: the payload is real
    assert marker.exists()


def test_build_cannot_tamper_with_the_allowed_stand_ins(tmp_path):
    """BUILD aimed at an allowed global must fail, and later loads stay correct."""
    for state in (b"}X\x05\x00\x00\x00dtypeK\x00s",                   # {'dtype': 0}
                  b"N}X\x05\x00\x00\x00dtypeK\x00s\x86",               # (None, {'dtype': 0})
                  b"X\x0c\x00\x00\x00FloatStorageK\x00\x86"):          # ('FloatStorage', 0)
        for target in (b"ctorch\nFloatStorage\n", b"ctorch._utils\n_rebuild_tensor_v2\n",
                       b"ccollections\nOrderedDict\n", b"cargparse\nNamespace\n"):
            evil = b"\x80\x02" + target + state + b"b."
            with pytest.raises(CheckpointError):
                read_pth(write_zip_pth(tmp_path / "tamper.pth", {}, pickled=evil))
    arrays = {"w": np.arange(3, dtype=np.float32)}
    got = read_pth(write_zip_pth(tmp_path / "after.pth", fake_state(arrays)))
    assert got["w"].dtype == np.float32 and np.array_equal(got["w"], arrays["w"])


def test_view_outside_its_storage_is_refused_not_read(tmp_path):
    storage = FakeStorage("0", "FloatStorage", np.arange(10, dtype=np.float32))
    for size, stride, offset in (((10,), (5,), 0), ((3,), (1,), 8), ((20,), (0,), 0)):
        path = write_zip_pth(tmp_path / "oob.pth", {"x": FakeTensor(storage, offset, size, stride)})
        with pytest.raises(CheckpointError, match="storage 0"):
            read_pth(path)


def test_malformed_persistent_id_and_missing_storage_record(tmp_path):
    bad_pid = b"\x80\x02(X\x07\x00\x00\x00storageX\x0c\x00\x00\x00FloatStorageX\x01\x00\x00\x000X\x03\x00\x00" \
              b"\x00cpuK\x02tQ."  # storage type given as a string, not torch.FloatStorage
    with pytest.raises(CheckpointError, match="malformed storage persistent id"):
        read_pth(write_zip_pth(tmp_path / "pid.pth", {}, pickled=bad_pid))

    data, _ = pickle_bytes(fake_state({"w": np.ones(3, np.float32)}))
    path = tmp_path / "nodata.pth"
    with zipfile.ZipFile(path, "w") as out:
        out.writestr("archive/data.pkl", data)
    with pytest.raises(CheckpointError, match="archive/data/0 is missing"):
        read_pth(path)


# ----------------------------------------------------------------------------------------------
# Truncated and corrupt files

def small_state():
    rng = np.random.default_rng(2)
    return fake_state({"w": rng.standard_normal((16, 16)).astype(np.float32), "b": np.zeros(16, np.float32)})


@pytest.mark.parametrize("writer", [write_zip_pth, write_legacy_pth])
@pytest.mark.parametrize("keep", [0.2, 0.5, 0.97])
def test_truncated_file_gives_a_clear_error(tmp_path, writer, keep):
    path = writer(tmp_path / "full.pth", small_state())
    data = path.read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(CheckpointError, match=r"cut\.pth.*(truncated|corrupt|ends inside)"):
        read_state_dict(cut)


def test_corrupted_storage_bytes_fail_the_zip_checksum(tmp_path):
    path = write_zip_pth(tmp_path / "crc.pth", small_state())
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("archive/data/0")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + 100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"crc\.pth.*(CRC|corrupt)"):
        read_pth(path)


def test_random_bytes_are_refused_with_the_file_name(tmp_path):
    rng = np.random.default_rng(3)
    noise = tmp_path / "noise.pth"
    noise.write_bytes(b"\x80" + rng.bytes(5000))  # looks like a pickle at first
    with pytest.raises(CheckpointError, match=r"noise\.pth"):
        read_state_dict(noise)
    text = tmp_path / "readme.pth"
    text.write_text("these are not weights")
    with pytest.raises(CheckpointError, match=r"readme\.pth: unrecognised checkpoint content"):
        read_state_dict(text)
