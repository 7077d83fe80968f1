"""Damaged or mislabelled checkpoint files of every format fail with a CheckpointError that names the file."""
import zipfile

import mindspore as ms
import numpy as np
import pytest
from mindspore import Parameter, Tensor
from safetensors.numpy import save_file

from ppt_ms.checkpoint import CheckpointError, read_state_dict


def good_files(directory):
    state = {"w": np.arange(64, dtype=np.float32).reshape(8, 8), "b": np.ones(8, np.float32)}
    save_file(state, str(directory / "good.safetensors"))
    np.savez(directory / "good.npz", **state)
    ms.save_checkpoint([{"name": k, "data": Parameter(Tensor(v), name=k)} for k, v in state.items()],
                       str(directory / "good.ckpt"))
    return [directory / "good.safetensors", directory / "good.npz", directory / "good.ckpt"]


@pytest.mark.parametrize("keep", [0.1, 0.6, 0.95])
def test_truncated_files(tmp_path, keep):
    for good in good_files(tmp_path):
        data = good.read_bytes()
        cut = tmp_path / ("cut" + good.suffix)
        cut.write_bytes(data[:int(len(data) * keep)])
        with pytest.raises(CheckpointError) as error:
            read_state_dict(cut)
        assert str(cut) in str(error.value)


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".bin", ".safetensors", ".npz", ".ckpt", ".weights"])
def test_random_bytes_under_any_extension(tmp_path, suffix):
    noise = tmp_path / ("noise" + suffix)
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError) as error:
        read_state_dict(noise)
    assert str(noise) in str(error.value)


def test_empty_missing_and_directory_paths(tmp_path):
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty\.pth: file is empty"):
        read_state_dict(empty)
    with pytest.raises(CheckpointError, match="checkpoint file not found"):
        read_state_dict(tmp_path / "absent.pth")
    with pytest.raises(CheckpointError, match="checkpoint file not found"):
        read_state_dict(tmp_path)


def test_zip_that_is_neither_torch_nor_npz(tmp_path):
    path = tmp_path / "docs.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(CheckpointError, match=r"docs\.pth: zip archive is neither.*readme\.txt"):
        read_state_dict(path)


def test_safetensors_header_pointing_past_the_end(tmp_path):
    path = tmp_path / "lies.safetensors"
    header = b'{"w":{"dtype":"F32","shape":[1000],"data_offsets":[0,4000]}}'
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 16)
    with pytest.raises(CheckpointError, match=r"lies\.safetensors: not a readable safetensors file"):
        read_state_dict(path)


def test_zip_with_two_torch_pickles(tmp_path):
    path = tmp_path / "two.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a/data.pkl", b"\x80\x02}q\x00.")
        archive.writestr("b/data.pkl", b"\x80\x02}q\x00.")
    with pytest.raises(CheckpointError, match=r"two\.pth: zip archive without a single '<name>/data\.pkl'"):
        read_state_dict(path)
