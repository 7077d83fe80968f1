"""Check a device against the published results: `tools/check_device.py --device Ascend`.

On the compact conformance set (tests/data/conformance_mini, shipped as ppt_ms/conformance_mini:
DeiT-Tiny with structured weights, 8 images, 7 PPT/ToMe cases, outputs of the published PyTorch code), the network this device runs
for inference (formulations.prepare) must give the reference's logits (to 1e-4), token counts,
PPT pool/prune choices and token sizes.  One training step must start from the reference's loss
and end with finite, changed weights; with `msrun_workers`, the same step on that many ranks must
leave every rank with the weights of the single-process step.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import mindspore as ms
from mindspore import nn

from .checkpoint import load_pretrained
from .errors import PPTMSError
from .formulations import prepare
from .models import TokenTrace, create_model
from .train.optimizer import create_optimizer
from .train.step import TrainStep

TOLERANCE = 1e-4
TRAINING_CASE = "ppt_mixed"
TRAINING_LR = 1e-3


class DeviceCheckError(PPTMSError, RuntimeError):
    """The check could not run (missing data, msrun failing to start); the message says why."""


@dataclass
class Row:
    check: str
    passed: bool
    detail: str


def default_data() -> str:
    """The compact conformance set, shipped inside the package (a link to tests/data/conformance_mini
    in a checkout, the files themselves in an installed wheel)."""
    return str(Path(__file__).parent / "conformance_mini")


class ConformanceSet:
    def __init__(self, folder: str):
        manifest = os.path.join(folder, "manifest.json")
        if not os.path.isfile(manifest):
            raise DeviceCheckError("no conformance set at %s (manifest.json missing); pass --data with the folder "
                                   "tests/data/conformance_mini of a ppt_ms checkout" % folder)
        self.folder = folder
        with open(manifest) as f:
            self.manifest = json.load(f)
        self.images = np.load(os.path.join(folder, "inputs.npy")).astype(np.float32)

    def network(self, case: str):
        net = create_model(self.manifest["model"], token_reduction=self.manifest["cases"][case]["token_reduction"])
        load_pretrained(net, os.path.join(self.folder, "weights.safetensors"))
        return net

    def golden(self, case: str):
        return np.load(os.path.join(self.folder, case + ".npz"))


def check_case(data: ConformanceSet, case: str) -> Row:
    """The inference network of this device against the reference on one case."""
    golden = data.golden(case)
    net = data.network(case)
    prepare(net, "inference")
    net.set_train(False)
    logits, size, _, stats = (o.asnumpy() for o in TokenTrace(net)(ms.Tensor(data.images)))
    problems = []
    diff = float(np.abs(logits - golden["logits"]).max())
    if not diff <= TOLERANCE:
        problems.append("logits differ by %.3g" % diff)
    if net.tokens_per_block != golden["tokens_per_block"].tolist():
        problems.append("tokens per block %s" % net.tokens_per_block)
    if "pooled" in golden:
        layers = [p.index for p in net.plan if p.r > 0]
        wrong = int(((stats[layers, :, 0] > 0.5) != golden["pooled"]).sum())
        if wrong:
            problems.append("%d of %d PPT choices differ" % (wrong, golden["pooled"].size))
    if "size" in golden and not np.allclose(size, golden["size"], atol=1e-6):
        problems.append("token sizes differ")
    return Row("conformance %s" % case, not problems, "; ".join(problems) or "max |logit diff| %.2g" % diff)


class _Loss(nn.Cell):
    def __init__(self, net):
        super().__init__(auto_prefix=False)
        self.net = net
        self.loss = nn.CrossEntropyLoss()

    def construct(self, images, labels):
        return self.loss(self.net(images).astype(ms.float32), labels)


def training_step(data: ConformanceSet, images, labels, group_size: int = 1):
    """One AdamW step of the training case's network (this device's training form) on images and
    labels -> (loss before the step, the parameters after it as NumPy arrays)."""
    net = data.network(TRAINING_CASE)
    run = prepare(net, "training")
    net.set_train(True)
    step = TrainStep(run, nn.CrossEntropyLoss(), create_optimizer(net, 0.05, TRAINING_LR), group_size=group_size)
    loss, _ = step(ms.Tensor(images), ms.Tensor(labels))
    return float(loss.asnumpy()), {p.name: p.asnumpy() for p in net.trainable_params()}


def check_training(data: ConformanceSet):
    """-> (Row, parameters after the step): the step's loss is the cross-entropy of the reference's
    logits; the weights move and stay finite."""
    labels = np.arange(len(data.images), dtype=np.int32)
    logits = data.golden(TRAINING_CASE)["logits"].astype(np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    expected = float(np.mean(np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(len(labels)), labels]))
    before = {p.name: p.asnumpy() for p in data.network(TRAINING_CASE).trainable_params()}
    loss, after = training_step(data, data.images, labels)
    problems = []
    if not abs(loss - expected) <= TOLERANCE:
        problems.append("loss %.6f, the reference's logits give %.6f" % (loss, expected))
    if not all(np.isfinite(a).all() for a in after.values()):
        problems.append("non-finite weights after the step")
    moved = sum(int(not np.array_equal(after[name], before[name])) for name in after)
    if moved < len(after) // 2:
        problems.append("only %d of %d parameters moved" % (moved, len(after)))
    detail = "; ".join(problems) or "loss %.6f (reference %.6f), %d of %d parameters moved" % (
        loss, expected, moved, len(after))
    return Row("training step (%s)" % TRAINING_CASE, not problems, detail), after


WORKER = """
import sys
import numpy as np
import mindspore as ms
from mindspore.communication import get_rank
ms.set_context(mode=ms.GRAPH_MODE)
ms.set_device({device!r})
from ppt_ms.device_check import ConformanceSet, training_step
from ppt_ms.distributed import init_world
world = init_world()
data = ConformanceSet({data!r})
loss, params = training_step(data, data.images, np.arange(len(data.images), dtype=np.int32), world.group_size)
np.savez({out!r} + "/rank%d.npz" % get_rank(), loss=loss, **params)
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def check_msrun(data: ConformanceSet, workers: int, device: str, single) -> Row:
    """The training step on `workers` msrun ranks, each on the whole batch: the averaged gradient is
    the single-process one, so every rank must end with `single`'s parameters."""
    msrun = shutil.which("msrun") or os.path.join(os.path.dirname(sys.executable), "msrun")
    if not os.path.exists(msrun):
        raise DeviceCheckError("--msrun needs MindSpore's msrun launcher, which is not on PATH")
    with tempfile.TemporaryDirectory() as folder:
        script = os.path.join(folder, "worker.py")
        with open(script, "w") as f:
            f.write(WORKER.format(device=device, data=data.folder, out=folder))
        env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
        logs = os.path.join(folder, "logs")
        command = [msrun, "--worker_num=%d" % workers, "--local_worker_num=%d" % workers, "--master_addr=127.0.0.1",
                   "--master_port=%d" % _free_port(), "--join=True", "--log_dir=%s" % logs, script]
        finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        ranks = [os.path.join(folder, "rank%d.npz" % r) for r in range(workers)]
        if finished.returncode != 0 or not all(os.path.exists(r) for r in ranks):
            tail = ""
            if os.path.isdir(logs):
                tail = " | ".join(Path(logs, name).read_text()[-300:] for name in sorted(os.listdir(logs)))
            return Row("msrun %d-rank training step" % workers, False, "msrun failed: %s" % (tail or finished.stderr[-300:]))
        results = [dict(np.load(r)) for r in ranks]
    worst = max(float(np.abs(result[name] - value).max()) for result in results for name, value in single.items())
    agree = all(np.array_equal(results[0][name], result[name]) for result in results for name in single)
    passed = agree and worst <= TOLERANCE
    return Row("msrun %d-rank training step" % workers, passed,
               "ranks %s; max |difference| to the single-process step %.2g" % (
                   "identical" if agree else "differ", worst))


def check_device(device: str, mode: str = "graph", data_folder: str = None, msrun_workers: int = 0):
    """Every check on `device` -> list of Rows."""
    ms.set_context(mode={"graph": ms.GRAPH_MODE, "pynative": ms.PYNATIVE_MODE}[mode])
    if ms.get_context("device_target") != device:
        ms.set_device(device)
    data = ConformanceSet(data_folder or default_data())
    rows = [check_case(data, case) for case in sorted(data.manifest["cases"])]
    row, single = check_training(data)
    rows.append(row)
    if msrun_workers:
        rows.append(check_msrun(data, msrun_workers, device, single))
    return rows


def format_rows(rows, device: str, mode: str) -> str:
    width = max(len(r.check) for r in rows)
    lines = ["device check: %s, %s mode, MindSpore %s" % (device, mode, ms.__version__)]
    lines += ["%-*s  %s  %s" % (width, r.check, "pass" if r.passed else "FAIL", r.detail) for r in rows]
    lines.append("%d passed, %d failed" % (sum(r.passed for r in rows), sum(not r.passed for r in rows)))
    return "\n".join(lines)
