"""read_state_dict for safetensors/npz/ckpt, load_pretrained, pos_embed resizing, atomic saving, the convert tool."""
import importlib.util
import json
import logging
import os
import struct
import subprocess
import sys
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn, Parameter, Tensor
from safetensors.numpy import save_file

from helpers.conformance_data import FULL as CONFORMANCE
from ppt_ms.checkpoint import (CheckpointError, load_pretrained, read_state_dict, resize_pos_embed,
                               save_checkpoint_atomic)
from ppt_ms.checkpoint import saving
from ppt_ms.models import create_model
from mindspore.nn.utils import no_init_parameters
from helpers.paths import DATA, ROOT, load_tool

REAL_PTH = CONFORMANCE / "deit_tiny_patch16_224.pth"
needs_conformance = pytest.mark.skipif(not REAL_PTH.exists(), reason="conformance data not available")


# ----------------------------------------------------------------------------------------------
# A tiny network named like timm's ViT

class Norm(nn.Cell):
    def __init__(self, dim):
        super().__init__()
        self.weight = Parameter(Tensor(np.ones(dim, np.float32)), name="weight")
        self.bias = Parameter(Tensor(np.zeros(dim, np.float32)), name="bias")


class PatchEmbed(nn.Cell):
    def __init__(self, grid, dim):
        super().__init__()
        self.grid_size = grid
        self.proj = nn.Conv2d(3, dim, 2, stride=2, has_bias=True)


class Attention(nn.Cell):
    def __init__(self, dim):
        super().__init__()
        self.qkv = nn.Dense(dim, 3 * dim)
        self.proj = nn.Dense(dim, dim)


class Block(nn.Cell):
    def __init__(self, dim):
        super().__init__()
        self.norm1 = Norm(dim)
        self.attn = Attention(dim)


class TinyViT(nn.Cell):
    """Parameters as timm names them; prefix tokens (CLS [+ distillation]) then a patch grid."""

    def __init__(self, grid=(4, 4), dim=8, num_classes=5, distilled=False):
        super().__init__()
        self.num_prefix_tokens = self.pos_embed_prefix_tokens = 2 if distilled else 1
        self.patch_embed = PatchEmbed(grid, dim)
        tokens = self.num_prefix_tokens + grid[0] * grid[1]
        self.cls_token = Parameter(Tensor(np.zeros((1, 1, dim), np.float32)), name="cls_token")
        if distilled:
            self.dist_token = Parameter(Tensor(np.zeros((1, 1, dim), np.float32)), name="dist_token")
        self.pos_embed = Parameter(Tensor(np.zeros((1, tokens, dim), np.float32)), name="pos_embed")
        self.blocks = nn.CellList([Block(dim), Block(dim)])
        self.norm = Norm(dim)
        self.head = nn.Dense(dim, num_classes)
        if distilled:
            self.head_dist = nn.Dense(dim, num_classes)


def random_state(net, seed=0, **shape_overrides):
    rng = np.random.default_rng(seed)
    shapes = {name: tuple(p.shape) for name, p in net.parameters_dict().items()}
    shapes.update(shape_overrides)
    return {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}


def net_arrays(net):
    return {name: p.asnumpy().copy() for name, p in net.parameters_dict().items()}


# ----------------------------------------------------------------------------------------------
# position embedding resampling against timm 1.x (scripts/timm_reference/pos_embed_resample.py)

RESAMPLED = np.load(DATA / "timm_pos_embed_resample.npz")


@pytest.mark.parametrize("index", range(len([k for k in RESAMPLED.files if k.endswith("_case")])))
def test_resize_equals_timm(index):
    """Shrinking (DINOv2's 37 x 37 grid to 16 x 16), growing and uneven grids, with 0-5 prefix tokens."""
    *grids, prefix = RESAMPLED["%d_case" % index].tolist()
    got = resize_pos_embed(RESAMPLED["%d_input" % index], prefix, grids[2:])
    np.testing.assert_allclose(got, RESAMPLED["%d_output" % index], rtol=0, atol=2e-6)  # torch: float32


def test_resize_keeps_an_equal_grid_and_a_constant():
    rng = np.random.default_rng(5)
    grid = rng.standard_normal((1, 2 + 36, 4)).astype(np.float32)
    assert np.array_equal(resize_pos_embed(grid, 2, (6, 6)), grid)
    constant = np.full((1, 1 + 49, 2), 0.375, np.float64)
    np.testing.assert_allclose(resize_pos_embed(constant, 1, (11, 5)), np.full((1, 1 + 55, 2), 0.375), atol=1e-14)


def test_resize_rejects_a_non_square_grid():
    with pytest.raises(CheckpointError, match="square grid"):
        resize_pos_embed(np.zeros((1, 1 + 15, 2)), 1, (4, 4))


# ----------------------------------------------------------------------------------------------
# load_pretrained

def test_exact_load_copies_every_parameter():
    net = TinyViT()
    state = random_state(net)
    report = load_pretrained(net, state)
    assert sorted(report.loaded) == sorted(state)
    assert not (report.resized or report.skipped or report.missing or report.unexpected)
    got = net_arrays(net)
    assert all(np.array_equal(got[k], state[k]) for k in state)


def test_all_problems_reported_in_one_error_and_nothing_written():
    net = TinyViT()
    before = net_arrays(net)
    state = random_state(net, **{"blocks.0.attn.qkv.weight": (16, 8), "norm.bias": (9,)})
    del state["blocks.1.norm1.bias"], state["cls_token"]
    state["blocks.2.attn.qkv.weight"] = np.zeros((24, 8), np.float32)
    state["patch_embed.proj.bias"] = np.zeros(8, np.int64)
    with pytest.raises(CheckpointError) as error:
        load_pretrained(net, state)
    message = str(error.value) + "\n".join(error.value.details)
    for expected in ("6 problem(s)", "missing in checkpoint: blocks.1.norm1.bias", "missing in checkpoint: cls_token",
                     "unexpected in checkpoint: blocks.2.attn.qkv.weight (24, 8)",
                     "blocks.0.attn.qkv.weight: checkpoint (16, 8) vs network (24, 8)",
                     "norm.bias: checkpoint (9,) vs network (8,)",
                     "dtype mismatch: patch_embed.proj.bias: checkpoint int64"):
        assert expected in message
    after = net_arrays(net)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_non_strict_tolerates_missing_and_unexpected_but_not_shapes():
    net = TinyViT()
    state = random_state(net)
    del state["norm.weight"]
    state["extra.weight"] = np.ones((2, 2), np.float32)
    init_norm = net.norm.weight.asnumpy().copy()
    report = load_pretrained(net, state, strict=False)
    assert report.missing == ["norm.weight"] and report.unexpected == ["extra.weight"]
    assert np.array_equal(net.norm.weight.asnumpy(), init_norm)
    assert np.array_equal(net.norm.bias.asnumpy(), state["norm.bias"])

    state["head.bias"] = np.zeros(6, np.float32)  # head.weight still has 5 classes: a plain shape error
    with pytest.raises(CheckpointError, match=r"head\.bias: checkpoint \(6,\) vs network \(5,\)"):
        load_pretrained(net, state, strict=False)


@pytest.mark.parametrize("distilled", [False, True])
def test_other_num_classes_skips_the_head_with_a_warning(caplog, distilled):
    net = TinyViT(num_classes=5, distilled=distilled)
    before = net_arrays(net)
    heads = ["head.weight", "head.bias"] + (["head_dist.weight", "head_dist.bias"] if distilled else [])
    overrides = {k: (7, 8) if k.endswith("weight") else (7,) for k in heads}
    state = random_state(net, **overrides)
    with caplog.at_level(logging.WARNING, logger="ppt_ms.checkpoint"):
        report = load_pretrained(net, state)
    assert sorted(report.skipped) == sorted(heads)
    assert report.skipped["head.weight"] == ((7, 8), (5, 8))
    assert "(7, 8)" in caplog.text and "(5, 8)" in caplog.text and "head.weight" in caplog.text
    after = net_arrays(net)
    for name in after:
        expected = before[name] if name in heads else state[name]
        assert np.array_equal(after[name], expected), name


def test_a_classifier_the_network_lacks_is_skipped_with_one_warning(caplog):
    """num_classes 0 (a feature extractor) and a checkpoint with a classifier: the rule of another
    class count (skip, warn), not a refusal."""
    with_head = create_model("vit_quickstart")
    state = {n: p.asnumpy() for n, p in with_head.parameters_and_names()}
    net = create_model("vit_quickstart", num_classes=0)
    with caplog.at_level(logging.WARNING, logger="ppt_ms.checkpoint"):
        report = load_pretrained(net, state)
    assert report.skipped == {"head.weight": ((10, 64), ()), "head.bias": ((10,), ())}
    assert len(caplog.records) == 1 and "num_classes 0" in caplog.text and "10 classes" in caplog.text
    assert "skipped head.weight: checkpoint (10, 64) vs network none" in report.lines()
    assert all(np.array_equal(p.asnumpy(), state[n]) for n, p in net.parameters_and_names())


# ----------------------------------------------------------------------------------------------
# training checkpoints: weights plus optimizer state, EMA copies, loss scale, counters

def ppt_ms_training_checkpoint(net, path):
    """What tools/train.py writes: weights, AdamW moments, EMA shadows, loss scaler, run position."""
    from ppt_ms.train.checkpointing import Progress, save_training_checkpoint, training_state
    from ppt_ms.train.ema import ParameterEMA
    from ppt_ms.train.optimizer import create_optimizer

    class Scaler:
        scale_value = Parameter(Tensor(1024.0), name="scale_value")
        counter = Parameter(Tensor(3, ms.int32), name="counter")
    state = training_state(net, create_optimizer(net, 0.05), ParameterEMA(net.trainable_params(), 0.99), Scaler())
    return save_training_checkpoint(os.path.dirname(path), Progress.at(88, 44, 32, 0), state)


def mindspore_adamw_checkpoint(net, path):
    """One step of MindSpore's own AdamWeightDecay through TrainOneStepCell, saved as a callback would."""
    step = nn.TrainOneStepCell(nn.WithLossCell(net, nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")),
                               nn.AdamWeightDecay(net.trainable_params(), 1e-3))
    step.set_train()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    step(Tensor(np.random.default_rng(0).standard_normal((2, 3, 24, 24)).astype(np.float32)),
         Tensor(np.array([1, 2], np.int32)))
    ms.save_checkpoint(step, path)
    return path


TRAINING_CHECKPOINTS = {
    "ppt_ms": (ppt_ms_training_checkpoint, ["optimizer moments (", "exp_avg.*", "exp_avg_sq.*", "EMA copy",
                                            "loss scaler state (2 tensors: loss_scale.*)", "state_step",
                                            "train_state.global_step", "took the live weights"]),
    "mindspore_adamw": (mindspore_adamw_checkpoint, ["optimizer moments (", "adam_m.*", "adam_v.*", "global_step",
                                                     "learning_rate"]),
}


@pytest.mark.parametrize("kind", sorted(TRAINING_CHECKPOINTS))
def test_training_checkpoints_load_as_weights_with_a_note(kind, tmp_path, caplog, capsys, pynative):
    write, note_parts = TRAINING_CHECKPOINTS[kind]
    trained = create_model("vit_quickstart")
    path = write(trained, str(tmp_path / "train" / "step00000088.ckpt"))
    weights = net_arrays(trained)
    net = create_model("vit_quickstart")
    with caplog.at_level(logging.WARNING, logger="ppt_ms.checkpoint"):
        report = load_pretrained(net, path)
    assert report.training_state.startswith("set aside training state: ") and "\n" not in report.training_state
    for part in note_parts:
        assert part in report.training_state, part
    assert report.training_state in caplog.text
    assert all(np.array_equal(p.asnumpy(), weights[n]) for n, p in net.parameters_dict().items())

    out = tmp_path / "weights.ckpt"
    assert load_tool("convert").main(["--src", path, "--dst", str(out), "--model", "vit_quickstart"]) == 0
    assert "set aside training state" in capsys.readouterr().out
    assert sorted(read_state_dict(out)) == sorted(weights)


def test_ema_copy_of_a_training_checkpoint_on_request(tmp_path):
    trained = create_model("vit_quickstart")
    path = ppt_ms_training_checkpoint(trained, str(tmp_path / "run" / "x.ckpt"))
    saved = read_state_dict(path)
    shadow = {n: saved["ema." + n] for n in net_arrays(trained) if "ema." + n in saved}
    for name in shadow:  # make the EMA copy differ from the live weights
        shadow[name] = shadow[name] + 1.0
    saved.update({"ema." + n: v for n, v in shadow.items()})
    net = create_model("vit_quickstart")
    report = load_pretrained(net, saved, use_ema=True)
    assert "took the EMA weights" in report.training_state
    assert all(np.array_equal(net.parameters_dict()[n].asnumpy(), v) for n, v in shadow.items())
    with pytest.raises(CheckpointError, match="no EMA copy"):
        load_pretrained(net, {n: p.asnumpy() for n, p in net.parameters_and_names()}, use_ema=True)


def test_a_network_parameter_named_like_training_state_is_kept():
    """Only entries that shadow a weight the checkpoint holds (or known counters) are training state."""
    from ppt_ms.checkpoint.training_state import split_training_state
    state = {"moment.scale": np.ones(3, np.float32), "ema.w": np.ones(2, np.float32), "w": np.zeros(2, np.float32)}
    weights, note = split_training_state(state)
    assert sorted(weights) == ["moment.scale", "w"] and "EMA copy (1 tensors: ema.*)" in note
    weights, note = split_training_state(state, network_names=["ema.w"])
    assert sorted(weights) == sorted(state) and note is None


def test_same_shape_but_other_names_is_said_so():
    net = create_model("vit_quickstart")
    state = {n.replace("attn.qkv", "attn.in_proj"): p.asnumpy() for n, p in net.parameters_and_names()}
    with pytest.raises(CheckpointError) as error:
        load_pretrained(net, state)
    message = str(error.value)
    assert "The network has that shape too: names or dtypes differ" in message and "The network: " not in message


@pytest.mark.parametrize("distilled", [False, True])
def test_pos_embed_from_14x14_to_16x16_keeps_prefix_tokens(distilled):
    net = TinyViT(grid=(16, 16), dim=4, distilled=distilled)
    prefix = net.num_prefix_tokens
    state = random_state(net, pos_embed=(1, prefix + 14 * 14, 4))
    report = load_pretrained(net, state)
    assert report.resized == {"pos_embed": ((1, prefix + 196, 4), (1, prefix + 256, 4))}
    pos = net.pos_embed.asnumpy()
    assert np.array_equal(pos[:, :prefix], state["pos_embed"][:, :prefix])
    np.testing.assert_array_equal(pos, resize_pos_embed(state["pos_embed"], prefix, (16, 16)))


def test_dinov2_weights_at_another_size_resample_the_patch_positions_as_timm():
    """DINOv2's position embedding covers the patches only (no prefix entries): a 37 x 37 grid
    (518 px) loaded into a model at 16 x 16 gives timm's resampled embedding."""
    with no_init_parameters():
        net = create_model("vit_small_patch14_reg4_dinov2", img_size=16 * 7, patch_size=7, embed_dim=3, depth=1,
                           num_heads=1)
    state = {name: np.zeros(p.shape, np.float32) for name, p in net.parameters_and_names()}
    state["pos_embed"] = RESAMPLED["0_input"]
    assert RESAMPLED["0_case"].tolist() == [37, 37, 16, 16, 0]
    report = load_pretrained(net, state)
    assert report.resized == {"pos_embed": ((1, 37 * 37, 3), (1, 16 * 16, 3))}
    np.testing.assert_allclose(net.pos_embed.asnumpy(), RESAMPLED["0_output"], rtol=0, atol=1e-6)


def test_bookkeeping_scalars_are_ignored_and_reported():
    net = TinyViT()
    state = random_state(net)
    state.update(epoch=np.array(7), num_batches_tracked=np.array(3, np.int64))
    report = load_pretrained(net, state)
    assert sorted(report.ignored_scalars) == ["epoch", "num_batches_tracked"]


def test_accepts_mindspore_tensors_and_rejects_other_values():
    net = TinyViT()
    state = random_state(net)
    load_pretrained(net, {k: Tensor(v) for k, v in state.items()})
    assert np.array_equal(net.head.weight.asnumpy(), state["head.weight"])
    with pytest.raises(CheckpointError, match="'head.bias' is a list"):
        load_pretrained(net, dict(state, **{"head.bias": [0.0] * 5}))


# ----------------------------------------------------------------------------------------------
# Other formats

def write_bf16_safetensors(path, name, bits, shape):
    header = json.dumps({name: {"dtype": "BF16", "shape": list(shape), "data_offsets": [0, 2 * bits.size]}})
    header = header.encode() + b" " * (-len(header) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(header)) + header + bits.astype("<u2").tobytes())


def test_safetensors_npz_and_ckpt_read_back_and_load(tmp_path):
    net = TinyViT()
    state = random_state(net)
    save_file(state, str(tmp_path / "w.safetensors"))
    np.savez(tmp_path / "w.npz", **state)
    ms.save_checkpoint([{"name": k, "data": Parameter(Tensor(v), name=k)} for k, v in state.items()],
                       str(tmp_path / "w.ckpt"))
    for name in ("w.safetensors", "w.npz", "w.ckpt"):
        got = read_state_dict(tmp_path / name)
        assert set(got) == set(state), name
        assert all(got[k].dtype == np.float32 and np.array_equal(got[k], state[k]) for k in state), name
        fresh = TinyViT()
        load_pretrained(fresh, tmp_path / name)
        assert np.array_equal(fresh.blocks[1].attn.qkv.weight.asnumpy(), state["blocks.1.attn.qkv.weight"])


def test_half_precision_is_widened(tmp_path):
    values = np.array([[0.5, -1.25, 65504.0]], np.float16)
    np.savez(tmp_path / "h.npz", w=values, n=np.array([2 ** 40], np.int64))
    got = read_state_dict(tmp_path / "h.npz")
    assert got["w"].dtype == np.float32 and got["w"].tolist() == [[0.5, -1.25, 65504.0]]
    assert got["n"].dtype == np.int64 and got["n"][0] == 2 ** 40

    write_bf16_safetensors(tmp_path / "b.safetensors", "w", np.array([0x3F80, 0xC020, 0x4049], np.uint16), (3,))
    got = read_state_dict(tmp_path / "b.safetensors")
    assert got["w"].dtype == np.float32 and got["w"].tolist() == [1.0, -2.5, 3.140625]


def test_content_decides_not_the_extension(tmp_path):
    state = {"a": np.arange(3, dtype=np.float32)}
    save_file(state, str(tmp_path / "really_safetensors.pth"))
    np.savez(tmp_path / "really_npz.safetensors.npz", **state)
    os.replace(tmp_path / "really_npz.safetensors.npz", tmp_path / "really_npz.bin")
    for name in ("really_safetensors.pth", "really_npz.bin"):
        assert np.array_equal(read_state_dict(tmp_path / name)["a"], state["a"])


def test_npz_with_objects_is_refused(tmp_path):
    np.savez(tmp_path / "o.npz", w=np.array([{"x": 1}], dtype=object))
    with pytest.raises(CheckpointError, match=r"o\.npz"):
        read_state_dict(tmp_path / "o.npz")


# ----------------------------------------------------------------------------------------------
# save_checkpoint_atomic

def test_save_round_trip_with_extra_scalars(tmp_path):
    net = TinyViT()
    load_pretrained(net, random_state(net))
    path = save_checkpoint_atomic(net, tmp_path / "net.ckpt", extra={"epoch": 3, "step": np.int64(1200), "lr": 0.5})
    loaded = ms.load_checkpoint(path)
    expected = net_arrays(net)
    assert all(np.array_equal(loaded[k].asnumpy(), expected[k]) for k in expected)
    assert int(loaded["epoch"].asnumpy()) == 3 and int(loaded["step"].asnumpy()) == 1200
    assert float(loaded["lr"].asnumpy()) == 0.5
    fresh = TinyViT()
    report = load_pretrained(fresh, path)  # the scalars are bookkeeping, not unexpected keys
    assert sorted(report.ignored_scalars) == ["epoch", "lr", "step"]
    assert os.listdir(tmp_path) == ["net.ckpt"]


def test_save_dict_overwrites_and_accepts_arrays_tensors_parameters(tmp_path):
    path = tmp_path / "sd.ckpt"
    save_checkpoint_atomic({"a": np.ones(2, np.float32)}, path)
    save_checkpoint_atomic({"a": np.arange(4, dtype=np.float32).reshape(2, 2)[:, ::-1], "b": Tensor(np.ones(1, np.int32)),
                            "c": Parameter(Tensor(np.zeros(3, np.float32)), name="unrelated")}, path)
    got = read_state_dict(path)
    assert sorted(got) == ["a", "b", "c"]
    assert got["a"].tolist() == [[1.0, 0.0], [3.0, 2.0]] and got["b"].dtype == np.int32


@pytest.mark.parametrize("failing_step", ["save_checkpoint", "fsync", "replace"])
def test_failed_save_keeps_the_previous_file_and_leaves_no_temporary(tmp_path, monkeypatch, failing_step):
    path = tmp_path / "model.ckpt"
    save_checkpoint_atomic({"w": np.full(4, 1.5, np.float32)}, path)
    previous = path.read_bytes()
    listing = sorted(os.listdir(tmp_path))

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    if failing_step == "save_checkpoint":
        def partial_write(save_obj, file_name, **kwargs):
            Path(file_name).write_bytes(b"\x0a\x05half")
            Path(file_name[:-len(".ckpt")] + ".tmp").write_bytes(b"mindspore's own temporary")
            disk_full()
        monkeypatch.setattr(ms, "save_checkpoint", partial_write)
    elif failing_step == "fsync":
        monkeypatch.setattr(saving.os, "fsync", disk_full)
    else:
        monkeypatch.setattr(saving.os, "replace", disk_full)

    with pytest.raises(CheckpointError, match=r"model\.ckpt.*No space left on device"):
        save_checkpoint_atomic({"w": np.zeros(4, np.float32)}, path, extra={"epoch": 1})
    assert path.read_bytes() == previous
    assert sorted(os.listdir(tmp_path)) == listing
    monkeypatch.undo()
    assert read_state_dict(path)["w"].tolist() == [1.5] * 4


def test_save_argument_errors_name_the_problem(tmp_path):
    net = TinyViT()
    with pytest.raises(CheckpointError, match=r"must end with \.ckpt"):
        save_checkpoint_atomic(net, tmp_path / "model.pth")
    with pytest.raises(CheckpointError, match="does not exist"):
        save_checkpoint_atomic(net, tmp_path / "no" / "such" / "dir.ckpt")
    with pytest.raises(CheckpointError, match=r"extra\['note'\] must be an int, float or bool"):
        save_checkpoint_atomic(net, tmp_path / "m.ckpt", extra={"note": "best"})
    with pytest.raises(CheckpointError, match="'head.weight' must be a string that is not a parameter name"):
        save_checkpoint_atomic(net, tmp_path / "m.ckpt", extra={"head.weight": 1})
    with pytest.raises(CheckpointError, match="cannot save entry 'w'"):
        save_checkpoint_atomic({"w": [1, 2]}, tmp_path / "m.ckpt")
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------------------------
# tools/convert.py

def load_convert_tool():
    spec = importlib.util.spec_from_file_location("convert_tool", ROOT / "tools" / "convert.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_convert_tool_without_model(tmp_path, capsys):
    state = random_state(TinyViT())
    np.savez(tmp_path / "w.npz", **state)
    tool = load_convert_tool()
    assert tool.main(["--src", str(tmp_path / "w.npz"), "--dst", str(tmp_path / "out" / "w.ckpt")]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "(npz): %d tensors, %d values" % (len(state), sum(v.size for v in state.values())) in printed
    progress = captured.err.strip().splitlines()  # on stderr: the first step with an ETA, then the end
    assert progress[0].startswith("convert: 1/2 steps, ") and "ETA" in progress[0]
    assert progress[-1].startswith("convert: 2/2 steps, ") and "took" in progress[-1]
    got = read_state_dict(tmp_path / "out" / "w.ckpt")
    assert all(np.array_equal(got[k], state[k]) for k in state)

    assert tool.main(["--src", str(tmp_path / "missing.pth"), "--dst", str(tmp_path / "x.ckpt")]) == 1
    assert "checkpoint file not found" in capsys.readouterr().err


@needs_conformance
def test_convert_tool_loads_real_deit_into_the_model(tmp_path):
    from safetensors.numpy import load_file
    dst = tmp_path / "deit_tiny_10.ckpt"
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "convert.py"), "--src", str(REAL_PTH), "--dst", str(dst),
                          "--model", "deit_tiny_patch16_224", "--num_classes", "10"],
                         capture_output=True, text=True, cwd=str(tmp_path), timeout=600)
    assert run.returncode == 0, run.stderr
    assert "152 tensors" in run.stdout and "loaded 150 parameter(s)" in run.stdout
    assert "skipped head.weight: checkpoint (1000, 192) vs network (10, 192)" in run.stdout
    expected = load_file(str(CONFORMANCE / "deit_tiny_patch16_224.safetensors"))
    got = read_state_dict(dst)
    assert got["head.weight"].shape == (10, 192)
    assert all(np.array_equal(got[k], expected[k]) for k in expected if not k.startswith("head."))


@needs_conformance
def test_real_deit_at_another_resolution_gets_a_resized_pos_embed():
    net = create_model("deit_tiny_patch16_224", img_size=256)
    state = read_state_dict(REAL_PTH)
    report = load_pretrained(net, state)
    assert report.resized == {"pos_embed": ((1, 197, 192), (1, 257, 192))}
    pos = net.pos_embed.asnumpy()
    assert np.array_equal(pos[:, :1], state["pos_embed"][:, :1])
    np.testing.assert_array_equal(pos, resize_pos_embed(state["pos_embed"], 1, (16, 16)))


def test_a_checkpoint_of_another_model_is_explained_in_one_line(tmp_path, capsys):
    """A DeiT-Tiny checkpoint given to the quick-start model: one line that says what the checkpoint
    is (and its likely name), what the network expects and a few example keys; --verbose adds all."""
    from safetensors.numpy import save_file as save_safetensors
    with no_init_parameters():
        deit = create_model("deit_tiny_patch16_224")
    path = tmp_path / "deit_tiny.safetensors"
    save_safetensors({n: np.zeros(p.shape, np.float32) for n, p in deit.parameters_and_names()}, str(path))
    convert = load_tool("convert")
    argv = ["--src", str(path), "--dst", str(tmp_path / "out.ckpt"), "--model", "vit_quickstart"]
    assert convert.main(argv) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("convert: ")]  # progress
    assert len(lines) == 1 and len(lines[0]) < 1000
    for fragment in ("does not fit the network", "12 blocks of width 192, 14 x 14 patches of 16 px (224 px)",
                     "likely deit_tiny_patch16_224", "The network: 4 blocks of width 64, 6 x 6 patches of 4 px",
                     "E.g. ", "more (all of them: --verbose"):
        assert fragment in lines[0]
    assert convert.main(argv + ["--verbose"]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("convert: ")]
    problems = int(lines[0].split(" problem(s)")[0].rsplit("(", 1)[1])
    assert len(lines) == 1 + problems and problems > 100
    assert not (tmp_path / "out.ckpt").exists()
