"""Evaluation: top-1 / top-5 accuracy and mean loss over the val split, MACs and forward throughput.

`evaluate(net, dataset)` does the measuring for any network and batched (image, label) dataset;
`evaluate_checkpoint(cfg, ckpt)` builds everything from a config (what tools/eval.py runs).
"""
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np
import mindspore as ms
from mindspore import nn, ops

from .builder import build_model, chosen_weights, setup_context
from .config import eval_batch_size
from .data import create_dataset
from .data.loader import shard_positions
from .models import logits_of
from . import reporting
from .reporting import table
from .flops import count_macs
from .distributed import init_world
from .progress import Progress, image_count

TOP_K = 5


def batch_totals(logits: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """[images, top-1 hits, top-k hits, summed cross-entropy] of one batch.

    logits [B, K] float, labels [B] int class ids. A hit counts when the label is among the k
    largest logits (ties broken by the lower class index, as a stable sort does).
    """
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(len(labels))
    ranking = np.argsort(-logits, axis=1, kind="stable")
    top1 = ranking[:, 0] == labels
    topk = (ranking[:, :k] == labels[:, None]).any(axis=1)
    return np.array([len(labels), top1.sum(), topk.sum(), -log_probs[rows, labels].sum()], dtype=np.float64)


class _SumOverRanks(nn.Cell):
    def __init__(self):
        super().__init__()
        self.all_reduce = ops.AllReduce()

    def construct(self, x):
        return self.all_reduce(x)


class ForwardTimer:
    """Runs the network and times every call except the first one for each input shape (compiling)."""

    def __init__(self, net):
        self.net = net
        self.seen_shapes = set()
        self.images = 0
        self.seconds = 0.0
        self.example = None

    def __call__(self, images) -> np.ndarray:
        start = time.perf_counter()
        logits = logits_of(self.net(images)).asnumpy()
        elapsed = time.perf_counter() - start
        shape = tuple(images.shape)
        if shape in self.seen_shapes:
            self.images += shape[0]
            self.seconds += elapsed
        else:
            self.seen_shapes.add(shape)
            if self.example is None:
                self.example = images
        return logits

    def images_per_second(self) -> Optional[float]:
        """Images per second over the timed calls; with none yet, one extra call of the first batch is timed."""
        if self.images == 0 and self.example is not None:
            self(self.example)
        return self.images / self.seconds if self.seconds > 0 else None


@dataclass
class EvalMetrics:
    """top1/top5 in percent (top5 is top-k with k = min(5, classes)), loss = mean cross-entropy."""
    images: int
    top1: float
    top5: float
    loss: float
    images_per_second: Optional[float] = None


def evaluate(net, dataset, what: str = "eval") -> EvalMetrics:
    """Accuracy and mean loss of `net` on a batched dataset of (image [B,3,H,W], int label [B]),
    with a progress display named `what` (progress.py).

    Data parallel (a dataset of ppt_ms.data.create_dataset with group_size > 1): each rank reads
    and decodes only its shard; the samples the sampler repeats to even out the shards are not
    counted, the sums are added over the ranks, so every image counts exactly once and all ranks
    return the same metrics.  images_per_second is this rank's forward throughput.
    """
    rank, group_size, total = getattr(dataset, "shard", (0, 1, None))
    was_training = net.training
    net.set_train(False)
    timer = ForwardTimer(net)
    totals = np.zeros(4, dtype=np.float64)
    read = 0
    try:
        with Progress(what, image_count(dataset), quiet=rank != 0) as progress:  # rank 0 speaks for all
            for batch in dataset.create_tuple_iterator(num_epochs=1):
                images, labels = batch[0], batch[1].asnumpy()
                logits = timer(images)
                if labels.ndim != 1:
                    raise ValueError("evaluate needs int class ids [B] as labels, got shape %s (soft targets are "
                                     "for training only)" % (labels.shape,))
                if group_size > 1:
                    logits, labels = own_samples(batch[2].asnumpy(), logits, labels, rank, group_size, total, read)
                read += len(batch[1])
                totals += batch_totals(logits, labels.astype(np.int64), min(TOP_K, logits.shape[1]))
                progress.update(len(batch[1]))
        speed = timer.images_per_second()
    finally:
        net.set_train(was_training)
    if group_size > 1:
        totals = _SumOverRanks()(ms.Tensor(totals, ms.float32)).asnumpy().astype(np.float64)
    images = int(round(totals[0]))
    if images == 0:
        raise ValueError("the evaluation dataset produced no images")
    return EvalMetrics(images=images, top1=100.0 * totals[1] / images, top5=100.0 * totals[2] / images,
                       loss=float(totals[3] / images), images_per_second=speed)


def own_samples(indices, logits, labels, rank, group_size, total, start):
    """The rows of a shard's batch that are its own samples, not the sampler's repeats;
    RuntimeError if the samples are not in the order shard_positions expects."""
    expected, own = shard_positions(rank, group_size, total, start, len(indices))
    if list(indices) != expected:
        raise RuntimeError("rank %d of %d read samples %s where %s were expected: MindSpore's sharded sampler "
                           "has another order, so repeated samples cannot be told apart"
                           % (rank, group_size, list(indices)[:8], expected[:8]))
    return logits[own], labels[own]


@dataclass
class EvalReport:
    """Everything tools/eval.py prints and writes as JSON."""
    model: str
    token_reduction: dict
    checkpoint: Optional[str]
    data: str
    batch_size: int
    images: int
    top1: float
    top5: float
    loss: float
    macs_per_image: int
    tokens_per_block: list = field(default_factory=list)
    images_per_second: Optional[float] = None  # of one rank
    ranks: int = 1
    skipped_unreadable: int = 0  # images of the folder left out as unreadable (data.verify_images)


def evaluate_checkpoint(cfg, ckpt=None) -> EvalReport:
    """Set the context from cfg.system, build cfg.model with weights from `ckpt` (else eval.ckpt, else
    model.pretrained), and evaluate it on the val split of cfg.data with eval_batch_size(cfg).
    Checkpoints of tools/train.py work: their optimizer/EMA entries are left out."""
    weights = chosen_weights(ckpt, cfg.eval.ckpt, cfg.model.pretrained, needed_for="to evaluate")
    setup_context(cfg.system)
    world = init_world()  # under msrun, each rank reads and runs its shard of the images
    net, runnable = build_model(cfg, weights=weights, purpose="inference")
    dataset = create_dataset(cfg.data, "val", cfg.model.img_size, cfg.model.num_classes, training=False,
                             batch_size=eval_batch_size(cfg), rank=world.rank, group_size=world.group_size)
    metrics = evaluate(runnable, dataset, what="eval %s" % cfg.token_reduction.method)
    return EvalReport(model=cfg.model.name, token_reduction=cfg.token_reduction.to_dict(), checkpoint=weights,
                      data=os.path.join(cfg.data.path, cfg.data.val_split), batch_size=eval_batch_size(cfg),
                      images=metrics.images, top1=metrics.top1, top5=metrics.top5, loss=metrics.loss,
                      macs_per_image=count_macs(net).total, tokens_per_block=list(net.tokens_per_block),
                      images_per_second=metrics.images_per_second, ranks=world.group_size,
                      skipped_unreadable=len(dataset.skipped))


def _reduction_summary(tr: dict) -> str:
    method = tr.get("method", "none")
    if method == "none":
        return "none"
    details = "r=%s" % (tr["r"],)
    if method in ("ppt", "prune"):
        details += " layers=%s" % (list(tr["layers"]),)
    if method == "ppt":
        details += " threshold=%g" % tr["threshold"]
    if method == "tome" and tr.get("inflection") is not None:
        details += " inflection=%g" % tr["inflection"]
    return "%s (%s)" % (method, details)


def format_report(report: EvalReport) -> str:
    """A two-column table of the results."""
    per_rank = " per rank, %d ranks" % report.ranks if report.ranks > 1 else ""
    speed = ("%.1f (batch %d%s, forward only, compile excluded)" % (report.images_per_second, report.batch_size,
                                                                    per_rank)
             if report.images_per_second else "not measured")
    rows = [("model", report.model),
            ("token reduction", _reduction_summary(report.token_reduction)),
            ("tokens per block", " ".join(str(n) for n in report.tokens_per_block)),
            ("checkpoint", str(report.checkpoint)),
            ("data", report.data),
            ("images", "%d%s" % (report.images, ", %d unreadable left out" % report.skipped_unreadable
                                 if report.skipped_unreadable else "")),
            ("top-1", "%.2f %%" % report.top1),
            ("top-5", "%.2f %%" % report.top5),
            ("loss", "%.4f" % report.loss),
            ("MACs per image", "%.4f G" % (report.macs_per_image / 1e9)),
            ("images/s", speed)]
    return "\n".join(table(rows, align="left"))


def write_json(report: EvalReport, path) -> None:
    """Write the report as JSON (parent folders are created)."""
    reporting.write_json(asdict(report), path)
