"""Timing calls side by side, and the calls a benchmark times.

Runtime.  benchmark.runtime mindspore (default) times the networks themselves;
onnxruntime exports each variant to ONNX per batch size (ppt_ms.export, as
tools/export.py writes it) and times the files in ONNX Runtime with every
execution provider it offers here and one thread per usable core
(ppt_ms.onnx_runtime); the report names the providers.

Measurement (graph or PyNative as system.mode says, float32, one process), per batch size:
1. compile: each variant's first call (graph compile + one run), timed alone;
2. warm-up: benchmark.warmup untimed calls of each variant;
3. benchmark.repeats rounds; a round times one call of every variant, and the
   starting variant rotates from round to round, so machine noise (other
   processes, clock changes) falls on all variants alike.
One call = the forward pass on a fixed random batch plus copying the logits
to the host (that copy waits for the result).  images/s = batch / call time.
"""
import os
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Dict, List, Optional

import numpy as np
import mindspore as ms
from mindspore import nn

from ..export import export_network
from ..onnx_runtime import OnnxSession, onnxruntime_version
from ..progress import Progress
from ..train.loss import create_loss
from ..train.optimizer import create_optimizer
from ..train.step import TrainStep
from .memory import RssProbe

@dataclass
class Timings:
    """One variant's first call, its timed calls (seconds) and memory (MB)."""
    first_call_s: float
    first_call_peak_mb: Optional[float]
    first_call_retained_mb: Optional[float]
    seconds: List[float] = field(default_factory=list)
    timed_calls_peak_mb: Optional[float] = None


def _timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def rotated(names: List[str], round_index: int) -> List[str]:
    """The order of one round of side-by-side calls: `names` starting at round_index (mod its length)."""
    shift = round_index % len(names)
    return names[shift:] + names[:shift]


def time_side_by_side(calls: Dict[str, Callable[[], object]], warmup: int, repeats: int) -> Dict[str, Timings]:
    """First call of each, `warmup` untimed calls of each, then `repeats` rounds
    timing one call of each, the starting call rotating every round."""
    timings = {}
    for name, call in calls.items():
        with RssProbe() as memory:
            elapsed = _timed(call)
        timings[name] = Timings(elapsed, memory.peak, memory.retained)
        for _ in range(warmup):
            call()
    with Progress("benchmark rounds", repeats, "rounds") as progress:
        for round_index in range(repeats):
            for name in rotated(list(calls), round_index):
                with RssProbe() as memory:
                    timings[name].seconds.append(_timed(calls[name]))
                if memory.peak is not None:
                    timings[name].timed_calls_peak_mb = max(timings[name].timed_calls_peak_mb or 0.0, memory.peak)
            progress.update()
    return timings


def quartiles(values) -> tuple:
    """(q1, median, q3) of `values` as floats."""
    return tuple(float(v) for v in np.percentile(np.asarray(values, dtype=np.float64), [25, 50, 75]))


def throughput(batch_size: int, seconds: List[float]) -> Dict[str, float]:
    """images/s of every timed call, summarised: median, quartiles, min, max."""
    rates = batch_size / np.asarray(seconds, dtype=np.float64)
    q1, median, q3 = quartiles(rates)
    return {"median": median, "q1": q1, "q3": q3,
            "min": float(rates.min()), "max": float(rates.max())}


def paired_speedup(baseline_seconds: List[float], seconds: List[float]):
    """Quartiles (q1, median, q3) over rounds of baseline time / time, both lists in round order."""
    return quartiles(np.asarray(baseline_seconds, dtype=np.float64) / np.asarray(seconds, dtype=np.float64))


def forward(net: nn.Cell, *inputs):
    """One timed call: the network's (first) output copied to the host, which waits for it."""
    out = net(*inputs)
    return (out[0] if isinstance(out, tuple) else out).asnumpy()


TRAINING_LR = 1e-4  # any small rate: the step's cost does not depend on it


def training_step_call(net: nn.Cell, images, num_classes: int, seed: int) -> Callable[[], object]:
    """One timed training call of `net`: forward, loss (label smoothing 0.1), backward and an
    AdamW update with DeiT's parameter groups, as tools/train.py runs it in float32."""
    net.set_train(True)
    step = TrainStep(net, create_loss(False, 0.1), create_optimizer(net, 0.05, TRAINING_LR))
    labels = ms.Tensor(np.random.default_rng(seed).integers(0, num_classes, images.shape[0]), ms.int32)
    return partial(forward, step, images, labels)


def onnxruntime_calls(nets: Dict[str, nn.Cell], images: ms.Tensor):
    """Each network exported to ONNX for `images`' shape, as an onnxruntime call
    on `images`, and the execution providers the sessions use."""
    calls, batch = {}, images.asnumpy()
    with tempfile.TemporaryDirectory() as folder:  # a session keeps its own copy of the graph
        for method, net in nets.items():
            session = OnnxSession(export_network(net, images, os.path.join(folder, method + ".onnx"), "ONNX"))
            calls[method] = partial(session.run, batch)
    return calls, {"name": "onnxruntime", "version": onnxruntime_version(), "providers": session.providers,
                   "intra_op_threads": session.threads}
