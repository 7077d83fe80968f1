"""Data parallel training under msrun (2 CPU workers): both ranks end with the same parameters, equal to a
single-process run with the same global batch; validation, each rank reading only its shard of a folder
that 2 does not divide, gives the single process's top-1, top-5 and loss; so does tools/eval.py.

Each step uses the whole 20-image training set (2 ranks x batch 10, or 1 process x batch 20), so the
averaged gradient does not depend on how a shuffled order is split over ranks (MindSpore's
DistributedSampler and RandomSampler shuffle differently for the same seed).
"Equal" is up to float rounding: the gradients differ in the last bits (sums in another order), and
Adam turns a rounding-level difference of a near-zero gradient (e.g. the key bias, whose exact gradient
is 0 because softmax ignores a constant shift) into a full +-lr step, so a handful of elements may
differ by ~lr; the test bounds the fraction of such elements (<= 0.1 %) and the relative size of the
whole difference (< 0.1 % of the update). The two ranks must agree bitwise.
Set PPT_MS_SKIP_MSRUN=1 to skip (it starts three MindSpore processes, about a minute).
"""
import json
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import mindspore as ms

from ppt_ms.builder import build_model
from ppt_ms.checkpoint import read_state_dict
from ppt_ms.config import load_config
from ppt_ms.evaluate import evaluate_checkpoint
from ppt_ms.train import list_checkpoints, train
from helpers.paths import QUICKSTART, ROOT

MSRUN = os.path.join(os.path.dirname(sys.executable), "msrun")

pytestmark = pytest.mark.skipif(os.environ.get("PPT_MS_SKIP_MSRUN") == "1" or not os.path.exists(MSRUN),
                                reason="PPT_MS_SKIP_MSRUN=1 or no msrun next to the Python interpreter")

WORKER = """
import json, sys
import numpy as np
from mindspore.communication import get_rank
from ppt_ms.config import load_config
from ppt_ms.data import source
from ppt_ms.train import train
decoded = []  # the validation images this rank decodes (data.num_workers 1: in this process)
load_rgb = source.load_rgb
source.load_rgb = lambda path: (decoded.append(path) if "/val/" in path else None, load_rgb(path))[1]
result = train(load_config({config!r}, {overrides!r}))
rank = get_rank()
sys.path.insert(0, {root!r})
from tools.eval import main as eval_main  # the tool; rank 0 writes the JSON
# epoch 2's checkpoint: rank 0 wrote it before the gradient all-reduce of epoch 3, so rank 1 sees it too
assert eval_main(["--config", {config!r}, *[word for item in {overrides!r} for word in ("--set", item)],
                  "--ckpt", {out!r} + "/run/step00000002.ckpt", "--json", {out!r} + "/eval.json"]) == 0
with open({out!r} + "/decoded_rank%d.json" % rank, "w") as handle:
    json.dump(decoded, handle)
np.savez({out!r} + "/params_rank%d.npz" % rank,
         **{{name: p.asnumpy() for name, p in result.net.parameters_dict().items()}})
with open({out!r} + "/history_rank%d.json" % rank, "w") as handle:
    json.dump(result.history, handle)
"""


@pytest.fixture(scope="module")
def micro_digits(digits_subset):
    """2 train images per class; 11 val images (1 per class and a second 0), which 2 ranks cannot
    share evenly: MindSpore's sampler repeats one on the second rank."""
    root = digits_subset("micro_digits", {"train": 2, "val": 1})
    first = sorted(os.listdir(root / "val" / "0"))[0]
    shutil.copy(root / "val" / "0" / first, root / "val" / "0" / ("copy_" + first))
    return root


def overrides(data, output, batch_size):
    return [f"data.path={data}", "token_reduction.method=none", f"data.batch_size={batch_size}",
            "data.num_workers=1", "data.scale=[1, 1]",
            "data.ratio=[1, 1]", "train.epochs=3", "train.warmup_epochs=0", "train.lr=0.05",
            "train.clip_grad=1.0", "eval.batch_size=4", "train.val_every_epochs=1", "train.save_every_epochs=1",
            f"train.output_dir={output}"]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_msrun_workers_match_each_other_and_a_single_process_run(micro_digits, tmp_path):
    out = tmp_path / "dp"
    out.mkdir()
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(config=QUICKSTART, out=str(out), root=str(ROOT),
                                    overrides=overrides(micro_digits, out / "run", 10)))
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
               GLOG_v="3")
    command = [MSRUN, "--worker_num=2", "--local_worker_num=2", "--master_addr=127.0.0.1",
               f"--master_port={free_port()}", "--join=True", f"--log_dir={tmp_path / 'logs'}", str(script)]
    finished = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    logs = "\n".join((tmp_path / "logs" / name).read_text()[-3000:] for name in sorted(os.listdir(tmp_path / "logs")))
    assert finished.returncode == 0 and (out / "params_rank1.npz").exists(), logs

    rank0, rank1 = np.load(out / "params_rank0.npz"), np.load(out / "params_rank1.npz")
    cfg = load_config(QUICKSTART, overrides(micro_digits, tmp_path / "single", 20))
    single = train(cfg)
    assert single.progress.global_step == 3 and single.progress.global_batch == 20
    ms.set_seed(cfg.system.seed)
    initial = build_model(cfg).parameters_dict()  # the common starting point of all three runs
    update_gap, update_size, far, elements = 0.0, 0.0, 0, 0
    for name, param in single.net.parameters_dict().items():
        np.testing.assert_array_equal(rank0[name], rank1[name], err_msg=name)
        start = initial[name].asnumpy()
        update_gap += float(((rank0[name] - param.asnumpy()) ** 2).sum())
        update_size += float(((param.asnumpy() - start) ** 2).sum())
        far += int((np.abs(rank0[name] - param.asnumpy()) > 1e-5).sum())
        elements += param.size
    assert far <= 1e-3 * elements, far
    assert update_size > 1e-4  # the runs really trained
    assert (update_gap / update_size) ** 0.5 < 1e-3

    history = [json.loads((out / f"history_rank{r}.json").read_text()) for r in (0, 1)]
    def measured(h):
        return h["train_loss"], h["val"]["images"], h["val"]["top1"], h["val"]["top5"], h["val"]["loss"]
    assert [measured(h) for h in history[0]] == [measured(h) for h in history[1]]
    for dp, sp in zip(history[0], single.history):
        assert dp["val"]["images"] == sp["val"]["images"] == 11  # each image once, the repeat left out
        assert dp["val"]["top5"] == pytest.approx(sp["val"]["top5"])
        assert dp["val"]["top1"] == pytest.approx(sp["val"]["top1"])
        assert dp["val"]["loss"] == pytest.approx(sp["val"]["loss"], rel=1e-4)
        assert dp["train_loss"] == pytest.approx(sp["train_loss"], rel=1e-4)
    # each rank decoded only its shard of the 11 val images (6 each: 11 and the repeat) at each of 3 validations
    # and in tools/eval.py
    decoded = [json.loads((out / f"decoded_rank{r}.json").read_text()) for r in (0, 1)]
    assert [len(d) for d in decoded] == [4 * 6, 4 * 6]
    assert len(set(decoded[0][:6]) | set(decoded[1][:6])) == 11
    written = list_checkpoints(out / "run")  # by rank 0 only, one per epoch
    assert [os.path.basename(p) for p in written] == ["step00000001.ckpt", "step00000002.ckpt", "step00000003.ckpt"]
    final = read_state_dict(written[-1])
    for name in rank0.files:
        np.testing.assert_array_equal(final[name], rank0[name], err_msg=name)

    report = json.loads((out / "eval.json").read_text())  # tools/eval.py under msrun, by rank 0
    alone = evaluate_checkpoint(load_config(QUICKSTART, overrides(micro_digits, tmp_path / "alone", 10)), written[1])
    assert report["ranks"] == 2 and report["images"] == alone.images == 11
    assert report["top1"] == pytest.approx(alone.top1) and report["top5"] == pytest.approx(alone.top5)
    assert report["loss"] == pytest.approx(alone.loss, rel=1e-5)
