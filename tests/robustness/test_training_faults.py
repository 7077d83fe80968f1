"""A full disk while the trainer saves: a clear error naming the file, the last good checkpoint intact.

The write is made to fail inside mindspore.save_checkpoint (after it wrote part of the file), the
way ENOSPC hits a real run; the rest of the run is the real trainer and the real tool.
"""
import errno
import importlib.util
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from PIL import Image

from ppt_ms.checkpoint import read_state_dict
from ppt_ms.train import list_checkpoints

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = str(ROOT / "configs" / "quickstart.yaml")
FULL_AT_SAVE = 2


@pytest.fixture
def noise_digits(tmp_path):
    """train/<0..9>/: three 32 px noise images per class, 30 images: 3 steps of batch 10."""
    rng = np.random.default_rng(0)
    for label in range(10):
        folder = tmp_path / "data" / "train" / str(label)
        folder.mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return tmp_path / "data"


@pytest.fixture
def disk_full_on_second_save(monkeypatch):
    real_save = ms.save_checkpoint
    calls = []

    def save_until_full(save_obj, ckpt_file_name, **kwargs):
        calls.append(ckpt_file_name)
        if len(calls) == FULL_AT_SAVE:
            Path(ckpt_file_name).write_bytes(b"\x0a\x05part")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(save_obj, ckpt_file_name, **kwargs)

    monkeypatch.setattr(ms, "save_checkpoint", save_until_full)
    return calls


def train_tool():
    spec = importlib.util.spec_from_file_location("train_tool", ROOT / "tools" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_disk_full_during_a_save_stops_training_and_keeps_the_last_checkpoint(
        noise_digits, tmp_path, disk_full_on_second_save, capsys):
    output = tmp_path / "run"
    status = train_tool().main(["--config", QUICKSTART, "--data.path", str(noise_digits), "--data.batch_size", "10",
                                "--data.num_workers", "1", "--train.epochs", "1", "--train.warmup_epochs", "0",
                                "--train.save_every_steps", "1", "--train.keep_last", "5",
                                "--train.output_dir", str(output), "--token_reduction.method", "none", "--system.mode", "graph"])
    assert status == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert str(output / "step00000002.ckpt") in errors[0] and "No space left on device" in errors[0]
    assert "previous file, if any, is unchanged" in errors[0]

    assert [Path(p).name for p in list_checkpoints(output)] == ["step00000001.ckpt"]
    last_good = read_state_dict(output / "step00000001.ckpt")
    assert int(last_good["train_state.global_step"]) == 1
    assert all(np.isfinite(value).all() for value in last_good.values())
    assert len(disk_full_on_second_save) == FULL_AT_SAVE  # the run stopped at the failed save
