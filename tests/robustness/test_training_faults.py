"""Faults of a training run seen through tools/train.py: a full disk while saving, and resuming
from a checkpoint that does not belong to the run. Each is one "error:" line and exit status 1.

The full disk is made inside mindspore.save_checkpoint (after it wrote part of the file), the
way ENOSPC hits a real run; everything else is the real trainer and the real tool.
"""
import errno
import importlib.util
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from PIL import Image

from ppt_ms.checkpoint import read_state_dict, save_checkpoint_atomic
from ppt_ms.models import create_model
from ppt_ms.train import list_checkpoints
from helpers.paths import QUICKSTART, ROOT

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


def run_train_tool(capsys, data, output, *extra):
    """-> (exit status, the "error:" lines on stderr) of tools/train.py on a 3-step, unreduced run."""
    status = train_tool().main(["--config", QUICKSTART, "--data.path", str(data), "--data.batch_size", "10",
                                "--data.num_workers", "1", "--train.epochs", "1", "--train.warmup_epochs", "0",
                                "--train.save_every_steps", "1", "--train.keep_last", "5",
                                "--train.output_dir", str(output), "--token_reduction.method", "none",
                                "--system.mode", "graph", *extra])
    return status, [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]


def test_disk_full_during_a_save_stops_training_and_keeps_the_last_checkpoint(
        noise_digits, tmp_path, disk_full_on_second_save, capsys):
    output = tmp_path / "run"
    status, errors = run_train_tool(capsys, noise_digits, output)
    assert status == 1 and len(errors) == 1
    assert str(output / "step00000002.ckpt") in errors[0] and "No space left on device" in errors[0]
    assert "previous file, if any, is unchanged" in errors[0]

    assert [Path(p).name for p in list_checkpoints(output)] == ["step00000001.ckpt"]
    last_good = read_state_dict(output / "step00000001.ckpt")
    assert int(last_good["train_state.global_step"]) == 1
    assert all(np.isfinite(value).all() for value in last_good.values())
    assert len(disk_full_on_second_save) == FULL_AT_SAVE  # the run stopped at the failed save

    # that checkpoint cannot be resumed by a run with another batch size (another data order and lr)
    status, errors = run_train_tool(capsys, noise_digits, tmp_path / "other", "--data.batch_size", "5",
                                    "--train.resume", str(output / "step00000001.ckpt"))
    assert status == 1 and len(errors) == 1
    assert "cannot resume from %s exactly: steps_per_epoch: checkpoint 3, now 6; global_batch: checkpoint 10, now 5" \
        % (output / "step00000001.ckpt") in errors[0]


def test_resuming_from_plain_weights_points_to_finetune(noise_digits, tmp_path, capsys):
    weights = save_checkpoint_atomic(create_model("vit_quickstart"), tmp_path / "weights.ckpt")
    status, errors = run_train_tool(capsys, noise_digits, tmp_path / "run", "--train.resume", str(weights))
    assert status == 1 and len(errors) == 1
    assert "%s is not a training checkpoint written by ppt_ms.train" % weights in errors[0]
    assert "use train.finetune instead of train.resume" in errors[0]
    assert not (tmp_path / "run" / "step00000001.ckpt").exists()
