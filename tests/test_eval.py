"""Evaluation: per-batch totals against hand-counted cases, evaluate() against NumPy on a known linear
model, compile-free timing, and tools/eval.py on a timm-format checkpoint and on bad input."""
import json

import numpy as np
import pytest
import mindspore as ms
import mindspore.dataset as ds
from mindspore import nn
from safetensors.numpy import save_file

from ppt_ms.builder import model_token_reduction
from ppt_ms.config import load_config
from ppt_ms.data import create_dataset
from ppt_ms.evaluate import ForwardTimer, batch_totals, evaluate, format_report, write_json
from ppt_ms.models import create_model
from ppt_ms import progress
from tools.eval import main as eval_main
from helpers.paths import QUICKSTART


def test_batch_totals_count_hits_and_sum_cross_entropy():
    logits = np.array([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0],     # label 0: top-1 hit
                       [5.0, 4.0, 3.0, 2.0, 1.0, 0.0],     # label 4: 5th largest, top-5 hit only
                       [5.0, 4.0, 3.0, 2.0, 1.0, 0.0],     # label 5: smallest, no hit
                       [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]])    # label 1: tie with class 0, ranked second
    labels = np.array([0, 4, 5, 1])
    images, top1, top5, loss_sum = batch_totals(logits, labels, 5)
    assert (images, top1, top5) == (4, 1, 3)
    log_z = np.log(np.exp(np.arange(6.0)).sum())
    expected = (log_z - 5) + (log_z - 1) + (log_z - 0) + (np.log(2 * np.e + 4) - 1)
    assert loss_sum == pytest.approx(expected, rel=1e-12)
    assert tuple(batch_totals(logits[:, :3], np.array([2, 2, 2, 2]), 3)[:3]) == (4, 0, 4)


class Linear(nn.Cell):
    """logits = flatten(image) @ W; a model whose outputs NumPy can recompute."""

    def __init__(self, weight):
        super().__init__()
        self.weight = ms.Parameter(ms.Tensor(weight), name="weight")

    def construct(self, images):
        return ms.ops.matmul(images.reshape(images.shape[0], -1), self.weight)


def test_evaluate_matches_numpy_on_a_known_model_with_a_ragged_last_batch():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(23, 3, 2, 2)).astype(np.float32)
    labels = rng.integers(0, 7, 23).astype(np.int32)
    weight = rng.normal(size=(12, 7)).astype(np.float32)
    dataset = ds.NumpySlicesDataset({"image": images, "label": labels}, shuffle=False).batch(5)
    net = Linear(weight)
    net.set_train(True)
    metrics = evaluate(net, dataset)

    logits = images.reshape(23, -1).astype(np.float64) @ weight
    order = np.argsort(-logits, axis=1)
    log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    assert metrics.images == 23
    assert metrics.top1 == pytest.approx(100 * np.mean(order[:, 0] == labels))
    assert metrics.top5 == pytest.approx(100 * np.mean([labels[i] in order[i, :5] for i in range(23)]))
    assert metrics.loss == pytest.approx(-log_probs[np.arange(23), labels].mean(), rel=1e-5)
    assert metrics.images_per_second > 0
    assert net.training  # evaluate restores the mode


def test_forward_timer_skips_the_first_call_of_every_shape():
    calls = []

    class Counting(nn.Cell):
        def construct(self, x):
            calls.append(x.shape)
            return x

    ms.set_context(mode=ms.PYNATIVE_MODE)
    try:
        timer = ForwardTimer(Counting())
        for batch in (4, 4, 2, 4):
            timer(ms.Tensor(np.zeros((batch, 3), np.float32)))
        assert timer.images == 8  # the second and fourth batch of 4; 4 and 2 once each for compiling
        single = ForwardTimer(Counting())
        single(ms.Tensor(np.zeros((3, 3), np.float32)))
        assert single.images_per_second() > 0 and single.images == 3  # one extra timed call
    finally:
        ms.set_context(mode=ms.GRAPH_MODE)


@pytest.fixture(scope="module")
def micro_digits(digits_subset):
    """2 train and 3 val images per class."""
    return digits_subset("eval_digits", {"train": 2, "val": 3})


def test_eval_tool_on_a_timm_format_checkpoint_matches_evaluate(micro_digits, tmp_path, capsys, monkeypatch):
    """... batching by data.batch_size (eval.batch_size unset), and shows its progress on stderr (done/total,
    rate, ETA; here a line per batch), results on stdout."""
    monkeypatch.setattr(progress, "INTERVAL", 0.0)
    ms.set_seed(3)
    source = create_model("vit_quickstart")
    weights = tmp_path / "vit_quickstart.safetensors"
    save_file({name: p.asnumpy() for name, p in source.parameters_dict().items()}, str(weights))
    report_path = tmp_path / "out" / "eval.json"
    assert eval_main(["--config", QUICKSTART, "--data.path", str(micro_digits), "--data.batch_size", "8",
                      "--ckpt", str(weights), "--json", str(report_path)]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    for row in ("top-1", "top-5", "loss", "MACs per image", "images/s", "ppt (r=9 layers=[1, 2]"):
        assert row in printed
    lines = [line for line in captured.err.splitlines() if line.startswith("eval ppt: ")]
    assert lines[0].startswith("eval ppt: 8/30 images, ") and " images/s, ETA 0:00:" in lines[0]
    assert lines[-1].startswith("eval ppt: 30/30 images, ") and ", took " in lines[-1]
    assert "eval ppt" not in printed
    report = json.loads(report_path.read_text())
    assert report["batch_size"] == 8  # eval.batch_size is unset: data.batch_size applies

    cfg = load_config(QUICKSTART, [f"data.path={micro_digits}"])
    net = create_model("vit_quickstart", token_reduction=model_token_reduction(cfg))
    for name, param in net.parameters_dict().items():
        param.set_data(source.parameters_dict()[name].data)
    expected = evaluate(net, create_dataset(cfg.data, "val", cfg.model.img_size, 10, training=False, batch_size=30))
    assert report["images"] == expected.images == 30
    assert report["top1"] == pytest.approx(expected.top1) and report["top5"] == pytest.approx(expected.top5)
    assert report["loss"] == pytest.approx(expected.loss, rel=1e-5)
    from ppt_ms.flops import count_macs_for
    unreduced = count_macs_for("vit_quickstart").total
    assert 0 < report["macs_per_image"] < unreduced
    assert report["checkpoint"] == str(weights) and report["batch_size"] == 8


def test_eval_tool_errors_are_one_clear_line(micro_digits, tmp_path, capsys):
    def errors(*argv):
        status = eval_main(["--config", QUICKSTART, "--data.path", str(micro_digits), *argv])
        return status, capsys.readouterr().err

    status, err = errors()
    assert status == 1 and "no weights to evaluate" in err and "--ckpt" in err
    status, err = errors("--ckpt", str(tmp_path / "missing.ckpt"))
    assert status == 1 and "missing.ckpt" in err
    wrong = tmp_path / "other_model.safetensors"
    save_file({"head.weight": np.zeros((10, 32), np.float32)}, str(wrong))
    status, err = errors("--ckpt", str(wrong))
    assert status == 1 and "head.weight" in err and "missing in checkpoint: cls_token" in err


def test_report_formatting_and_json_round_trip(tmp_path):
    from ppt_ms.evaluate import EvalReport
    report = EvalReport(model="vit_quickstart", token_reduction={"method": "tome", "r": 4, "inflection": None},
                        checkpoint="w.ckpt", data="d/val", batch_size=8, images=30, top1=50.0, top5=90.0,
                        loss=1.25, macs_per_image=12_000_000, tokens_per_block=[65, 61], images_per_second=None)
    text = format_report(report)
    assert "tome (r=4)" in text and "50.00 %" in text and "0.0120 G" in text and "not measured" in text
    write_json(report, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["tokens_per_block"] == [65, 61]


def test_eval_report_counts_the_unreadable_images_it_left_out(digits_subset, tmp_path, capsys):
    root = digits_subset("eval_unreadable", {"val": 1})
    (root / "val" / "3" / "empty.png").write_bytes(b"")
    (root / "val" / "4" / "cut.png").write_bytes(next((root / "val" / "4").glob("0*.png")).read_bytes()[:50])
    weights = tmp_path / "w.safetensors"
    save_file({n: p.asnumpy() for n, p in create_model("vit_quickstart").parameters_dict().items()}, str(weights))
    report_path = tmp_path / "eval.json"
    argv = ["--config", QUICKSTART, "--data.path", str(root), "--ckpt", str(weights), "--json", str(report_path),
            "--data.verify_images", "true", "--token_reduction.method", "none"]
    assert eval_main(argv) == 0
    report = json.loads(report_path.read_text())
    assert report["images"] == 10 and report["skipped_unreadable"] == 2
    assert "10, 2 unreadable left out" in capsys.readouterr().out
