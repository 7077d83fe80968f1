"""Checkpoint faults beyond damaged files: a writer killed mid-save, and weights of another architecture.

The kill is real: a subprocess starts writing a 128 MB checkpoint over the last good one and
is SIGKILLed once its staging file has grown but before it is complete. As a control, the same
kill during a plain mindspore.save_checkpoint (which deletes the old file first) loses it,
which shows the harness does hit the write.
"""
import glob
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ppt_ms.builder import build_model
from ppt_ms.checkpoint import CheckpointError, load_pretrained, read_state_dict, save_checkpoint_atomic
from ppt_ms.config import load_config
from ppt_ms.models import create_model
from ppt_ms.train.checkpointing import latest_checkpoint
from helpers.paths import QUICKSTART

BIG_ARRAYS, BIG_SHAPE = 32, (1024, 1024)  # 32 float32 arrays of 4 MiB
BIG_BYTES = BIG_ARRAYS * int(np.prod(BIG_SHAPE)) * 4

WRITER = """
import sys
import numpy as np
import mindspore as ms
from ppt_ms.checkpoint import save_checkpoint_atomic
state = {{"w%02d" % i: np.full({shape}, i, np.float32) for i in range({count})}}
print("writing", flush=True)
if sys.argv[2] == "atomic":
    save_checkpoint_atomic(state, sys.argv[1])
else:
    ms.save_checkpoint(state, sys.argv[1])
"""


def in_progress_files(directory):
    """Files MindSpore is writing: its '*.tmp' next to the target or inside our hidden staging folder."""
    return glob.glob(os.path.join(directory, "*.tmp")) + glob.glob(os.path.join(directory, ".*", "*.tmp"))


def kill_mid_write(path: Path, writer: str) -> int:
    """Start writing a big checkpoint to `path`; SIGKILL the writer once the file being written holds
    some but not all of its bytes. Returns that size."""
    script = WRITER.format(shape=BIG_SHAPE, count=BIG_ARRAYS)
    process = subprocess.Popen([sys.executable, "-c", script, str(path), writer], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout.readline().strip() == "writing"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            sizes = [os.path.getsize(f) for f in in_progress_files(path.parent) if os.path.exists(f)]
            if sizes and 0 < max(sizes) < BIG_BYTES // 2:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=30)
                return max(sizes)
            time.sleep(0.002)
        pytest.fail("never saw the checkpoint half written (writer exit code %s)" % process.poll())
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def last_good(directory: Path) -> Path:
    path = directory / "step00000001.ckpt"  # a training checkpoint name, as resume=auto looks for
    save_checkpoint_atomic({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, path, extra={"epoch": 1})
    return path


def test_killed_atomic_save_leaves_the_last_good_checkpoint_intact(tmp_path):
    path = last_good(tmp_path)
    before = path.read_bytes()
    written = kill_mid_write(path, "atomic")
    assert 0 < written < BIG_BYTES
    assert path.read_bytes() == before
    state = read_state_dict(path)
    assert state["w"].tolist() == [[0, 1, 2], [3, 4, 5]] and int(state["epoch"]) == 1
    assert latest_checkpoint(tmp_path) == str(path)  # the hidden staging leftovers are not checkpoints


def test_killed_plain_mindspore_save_loses_the_previous_file(tmp_path):
    """The control: without save_checkpoint_atomic the same kill destroys the last good checkpoint."""
    path = last_good(tmp_path)
    kill_mid_write(path, "plain")
    if path.exists():
        with pytest.raises(CheckpointError):
            read_state_dict(path)


# --------------------------------------------------------------------------- weights of another architecture

@pytest.fixture(scope="module")
def quickstart_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "quickstart.ckpt"
    return save_checkpoint_atomic(create_model("vit_quickstart"), path)


def test_weights_of_another_vit_list_every_mismatch_and_change_nothing(quickstart_weights):
    """vit_quickstart weights (width 64, 4 blocks) for a DeiT-Tiny (width 192, 12 blocks) at 32 px."""
    cfg = load_config(QUICKSTART, ["model.name=deit_tiny_patch16_224", "model.img_size=32", "token_reduction.method=none"])
    with pytest.raises(CheckpointError) as error:
        build_model(cfg, weights=quickstart_weights)
    assert "The checkpoint: 4 blocks of width 64, 6 x 6 patches of 4 px (24 px)" in str(error.value)
    assert "The network: 12 blocks of width 192, 2 x 2 patches of 16 px (32 px)" in str(error.value)
    message = "\n".join(error.value.details)
    assert "missing in checkpoint: blocks.4.attn.qkv.weight" in message and "blocks.11.mlp.fc2.bias" in message
    assert "cls_token: checkpoint (1, 1, 64) vs network (1, 1, 192)" in message
    assert "blocks.0.attn.qkv.weight: checkpoint (192, 64) vs network (576, 192)" in message
    assert "pos_embed: checkpoint (1, 37, 64) vs network (1, 5, 192)" in message
    net = create_model("deit_tiny_patch16_224", num_classes=10, img_size=32)
    before = {name: p.asnumpy().copy() for name, p in net.parameters_and_names()}
    with pytest.raises(CheckpointError):
        load_pretrained(net, quickstart_weights)
    assert all(np.array_equal(p.asnumpy(), before[name]) for name, p in net.parameters_and_names())


def test_weights_of_a_non_vit_are_refused_naming_both_sides(tmp_path):
    resnet_like = {"conv1.weight": np.zeros((64, 3, 7, 7), np.float32), "bn1.running_mean": np.zeros(64, np.float32),
                   "layer1.0.conv1.weight": np.zeros((64, 64, 3, 3), np.float32), "fc.weight": np.zeros((10, 512), np.float32)}
    path = save_checkpoint_atomic(resnet_like, tmp_path / "resnet.ckpt")
    with pytest.raises(CheckpointError) as error:
        load_pretrained(create_model("vit_quickstart"), path)
    assert "The checkpoint is not a timm ViT" in str(error.value) and "The network: 4 blocks" in str(error.value)
    message = "\n".join(error.value.details)
    assert "unexpected in checkpoint: conv1.weight (64, 3, 7, 7)" in message
    assert "missing in checkpoint: patch_embed.proj.weight" in message
