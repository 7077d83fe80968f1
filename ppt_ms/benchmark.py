"""Side-by-side inference benchmark of token-reduction methods on one model.

Variants.  Every entry of benchmark.compare gets its own network: the SAME
model and the SAME weights (the first variant loads them, the others copy its
parameters), differing only in token_reduction.  The config's own method
keeps the config's settings; the other methods start from PAPER_SETTINGS
(ToMe r 13 in every block; PPT r 50 at blocks [3, 6, 9] with threshold 7e-5;
pruning r 50 at [3, 6, 9]).  Any setting of any variant can be overridden
with "METHOD.KEY=VALUE" strings, e.g. "tome.r=8" or "ppt.layers=[1,2]"
(VALUE is read as YAML and validated like a config key).  An entry
METHOD-fused ("tome-fused", "ppt-fused") is METHOD with
token_reduction.fused_cpu_kernel on (its overrides are "ppt-fused.KEY=VALUE");
the plain METHOD has it off.  Source tracing is off: the variants are the
plain inference networks.

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

Memory is resident set size (RSS) from Linux /proc/self/status, with the peak
reset through /proc/self/clear_refs before each measured call:
- first_call_peak: highest RSS during the first call above the RSS before it
  (graph compilation plus the memory the compiled graph reserves);
- first_call_retained: what of that stays resident afterwards (the graph,
  its kernels and its share of MindSpore's memory pool);
- timed_calls_peak: the most any timed call raised RSS above the RSS before
  it; usually about 0, because MindSpore reuses the memory of the first call.
These are process-wide numbers (not tensor sizes); later variants can reuse
memory the earlier ones freed, so compare them with care.  None where /proc
is unavailable.

JSON written by write_json (run_benchmark's result):
  model, img_size, num_classes, weights, runtime {name, version[, providers, intra_op_threads]}, mode, dtype,
  warmup, repeats, batch_sizes,
  machine {cpu_count, platform, python, mindspore}, memory_note,
  variants {METHOD: {token_reduction, tokens_per_block, macs_per_image, macs_ratio_to_none}},
  results [{batch_size, method, compile_s, seconds, images_per_s {median, q1, q3, min, max},
            ms_per_batch_median, speedup_vs_none, speedup_vs_none_q1_q3, macs_per_image, macs_ratio_to_none,
            memory_mb {first_call_peak, first_call_retained, timed_calls_peak}}],
  reduction_profile (only when asked) [{method, batch_size, block, tokens_in, tokens_out,
            copies, rounds, block_ms, block_ms_q1_q3, step_ms, step_ms_q1_q3, reduction_share,
            reduction_share_q1_q3}].
seconds lists the timed calls in round order.  speedup_vs_none is paired:
in every round, method none's call time over the variant's, then the median
(and quartiles, speedup_vs_none_q1_q3) over the rounds.  Pairing calls made
seconds apart cancels the slow swings of a shared machine that a ratio of two
medians would keep (null without none); macs_ratio_to_none is the variant's
MACs per image over none's (ppt_ms.flops.count_macs).

Reduction profile.  For the first reducing block of every reducing variant,
on random inputs of the block's shapes, the cost of
- block: the whole block (attention, reduction, MLP);
- step: its reduction step alone, from the attention's k, v and
  probabilities to the reduced tokens: ToMe's metric, PPT's significance
  scores, and the reducer (matching and merge, pruning's top-k and gathers,
  PPT's variance and per-image select);
each measured inside one graph as a network runs it (`in_graph_ms`: a few
chained runs minus one, per round, minus a control), not as a graph call of
its own: a call of its own adds a fixed launch cost (about 1 ms on the
2-core CPU, for an empty graph with the step's inputs) that a network pays
once, not per block.  Block and step are timed in the same rounds;
reduction_share is the median over rounds of step / block.  Inputs are
random: the MindSpore-ops step costs the same for any values (PPT computes
both branches for every image and selects); the fused CPU kernel skips the
matching for pruned images, and random inputs pool (their score variance,
about 4e-5, is under PPT's 7e-5), its costlier branch.
"""
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Dict, List, Optional

import numpy as np
import mindspore as ms
from mindspore import nn, ops

from .builder import build_model
from .config import FUSED, ConfigError, make_config
from .errors import PPTMSError
from .export import export_network, sample_images
from .flops import count_macs
from .onnx_runtime import OnnxSession, onnxruntime_version
from .profile_ops import profile_ops
from .train.loss import create_loss
from .train.optimizer import AdamW, param_groups
from .train.step import TrainStep

PAPER_SETTINGS = {
    "none": {},
    "tome": {"r": 13, "inflection": None},
    "ppt": {"r": 50, "layers": [3, 6, 9], "threshold": 7.0e-5, "inflection": None},
    "prune": {"r": 50, "layers": [3, 6, 9], "inflection": None},
}

MEMORY_NOTE = ("process RSS from /proc/self/status (MB = 2**20 bytes), peak reset via /proc/self/clear_refs: "
               "first_call_peak = RSS high-water mark during the first call (compile + run) above the RSS before "
               "it; first_call_retained = RSS kept after it; timed_calls_peak = largest rise during a timed call. "
               "Process-wide, not tensor sizes; later variants may reuse memory earlier ones freed.")


class BenchmarkError(PPTMSError, ValueError):
    """A benchmark variant that cannot be set up; the message names the variant and the setting."""


# ---- variants ----

def _split_override(item: str, methods):
    method, dot, setting = item.partition(".")
    if not dot or "=" not in setting:
        raise BenchmarkError("variant override %r must look like METHOD.KEY=VALUE, e.g. tome.r=8" % item)
    if method not in methods:
        raise BenchmarkError("variant override %r is for method %r, which is not compared; compared: %s"
                             % (item, method, ", ".join(methods)))
    if setting.partition("=")[0].strip() == "method":
        raise BenchmarkError("variant override %r: a variant's method is its name; list methods in "
                             "benchmark.compare instead" % item)
    return method, "token_reduction." + setting


def variant_configs(cfg, methods=None, overrides=()) -> Dict[str, object]:
    """One validated config per compared method (see the module docstring);
    model.pretrained is cleared in all of them (build_variants loads weights once)."""
    methods = list(methods or cfg["benchmark"]["compare"])
    own = cfg["token_reduction"]["method"]
    extra = {method: [] for method in methods}
    for item in overrides:
        method, setting = _split_override(item, methods)
        extra[method].append(setting)
    data = cfg.to_dict()
    data["model"]["pretrained"] = None
    configs = {}
    for name in methods:
        fused = name.endswith(FUSED)
        method = name[:-len(FUSED)] if fused else name
        defaults = {} if method == own else PAPER_SETTINGS[method]
        settings = [("token_reduction.method", method), ("token_reduction.trace_source", False),
                    ("token_reduction.fused_cpu_kernel", fused)]
        settings += [("token_reduction." + key, value) for key, value in defaults.items()]
        try:
            configs[name] = make_config(data, settings + extra[name])
        except ConfigError as error:
            raise BenchmarkError("benchmark variant '%s': %s" % (name, error)) from None
    return configs


def copy_parameters(source: nn.Cell, target: nn.Cell):
    """Give `target` copies of `source`'s parameter values (the same names are required)."""
    values = {p.name: p for p in source.get_parameters()}
    names = [p.name for p in target.get_parameters()]
    if sorted(names) != sorted(values):
        raise BenchmarkError("variants differ in parameters: %s" % sorted(set(names) ^ set(values)))
    for param in target.get_parameters():
        param.set_data(ms.Tensor(values[param.name].asnumpy()))


def build_variants(configs: Dict[str, object], weights: Optional[str] = None) -> Dict[str, nn.Cell]:
    """Networks in inference mode, one per variant config; the first loads
    `weights` (if any), the others copy its parameters."""
    nets = {}
    for method, cfg in configs.items():
        first = not nets
        try:
            net = build_model(cfg, weights if first else None)
        except ValueError as error:
            raise BenchmarkError("benchmark variant '%s' (token_reduction %s) does not fit %s: %s; set its values "
                                 "with --variant %s.KEY=VALUE" % (method, dict(cfg["token_reduction"]),
                                                                  cfg["model"]["name"], error, method)) from None
        if not first:
            copy_parameters(next(iter(nets.values())), net)
        net.set_train(False)
        nets[method] = net
    return nets


# ---- memory ----

def _status_mb(field_name: str) -> Optional[float]:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


_PEAKS_BEFORE_RESETS = [0.0]  # VmHWM read before each reset, so the process's own peak is not lost


def process_peak_rss_mb() -> Optional[float]:
    """The most resident memory this process has had (MB), across the probes' resets."""
    current = _status_mb("VmHWM")
    return None if current is None else max(current, *_PEAKS_BEFORE_RESETS)


def _reset_peak_rss() -> bool:
    _PEAKS_BEFORE_RESETS.append(_status_mb("VmHWM") or 0.0)
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


class RssProbe:
    """Resident memory around a block of code: `peak` = high-water mark above
    the RSS at entry, `retained` = RSS at exit minus RSS at entry (MB; None
    without Linux /proc)."""

    def __enter__(self):
        self.usable = _reset_peak_rss()
        self.before = _status_mb("VmRSS") if self.usable else None
        self.peak = self.retained = None
        return self

    def __exit__(self, *exc):
        if self.before is not None:
            self.peak = _status_mb("VmHWM") - self.before
            self.retained = _status_mb("VmRSS") - self.before
        return False


# ---- timing ----

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
    names = list(calls)
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            with RssProbe() as memory:
                timings[name].seconds.append(_timed(calls[name]))
            if memory.peak is not None:
                timings[name].timed_calls_peak_mb = max(timings[name].timed_calls_peak_mb or 0.0, memory.peak)
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


def _forward(net: nn.Cell, *inputs):
    """One timed call: the network's (first) output copied to the host, which waits for it."""
    out = net(*inputs)
    return (out[0] if isinstance(out, tuple) else out).asnumpy()


TRAINING_LR = 1e-4  # any small rate: the step's cost does not depend on it


def training_step_call(net: nn.Cell, images, num_classes: int, seed: int) -> Callable[[], object]:
    """One timed training call of `net`: forward, loss (label smoothing 0.1), backward and an
    AdamW update with DeiT's parameter groups, as tools/train.py runs it in float32."""
    net.set_train(True)
    groups = [g for g in param_groups(net.trainable_params(), 0.05) if g["params"]]
    step = TrainStep(net, create_loss(False, 0.1), AdamW(groups, TRAINING_LR))
    labels = ms.Tensor(np.random.default_rng(seed).integers(0, num_classes, images.shape[0]), ms.int32)
    return partial(_forward, step, images, labels)


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


def _rounded(value, digits=1):
    return None if value is None else round(value, digits)


# ---- reduction profile ----

class ReductionStep(nn.Cell):
    """A block's reduction step, as the block runs it in inference (the fused
    CPU kernel if the block has one): (x, size, source, k, v, probs) -> the
    reduced (x, size, source)."""

    def __init__(self, block):
        super().__init__()
        self.block = block

    def construct(self, x, size, source, k, v, probs):
        if self.block.fused:
            x, size = self.block.reducer.reduce_fused(x, size, k, v, probs)
            return x, size, source
        metric, scores = self.block.reduction_inputs(k, v, probs)
        return self.block.reducer.reduce(x, size, source, metric, scores)


class Chained(nn.Cell):
    """`copies` runs of `part` inside one graph, one after another, as the
    blocks of a network run.  Before each run, the inputs flagged in `scaled`
    are multiplied by a per-image scalar e; one value of each scaled input
    and of the run's output then moves e (by 1e-9 times their sum).  So no run
    can start before the one before it ends, no two runs see equal inputs (none
    is merged away), and no scaling is dropped as unused.  With `part` None
    only the scaling and the reads run: the control to subtract.
    part: inputs -> a tuple whose first item is [B, N, C]."""

    def __init__(self, part: Optional[nn.Cell], copies: int, scaled):
        super().__init__()
        self.part = part
        self.copies = copies
        self.scaled = tuple(scaled)

    def construct(self, *inputs):
        e = ops.ones((inputs[0].shape[0], 1), ms.float32)
        for _ in range(self.copies):
            args = ()
            probe = ops.zeros_like(e)
            for tensor, scale in zip(inputs, self.scaled):
                if scale:
                    tensor = tensor * e.reshape((-1,) + (1,) * (tensor.ndim - 1))
                    probe = probe + _first_value(tensor)
                args = args + (tensor,)
            out = args[0] if self.part is None else self.part(*args)[0]
            e = e + 1e-9 * (probe + _first_value(out))
        return e


def _first_value(tensor):
    """tensor [B, ...] -> its first value per image, [B, 1]."""
    for axis in range(1, tensor.ndim):
        tensor = ops.narrow(tensor, axis, 0, 1)
    return tensor.reshape(-1, 1)


def marginal_per_round(seconds, copies: int) -> np.ndarray:
    """Per round, the cost of one run from the four Chained timings:
    seconds[(runs part?, number of runs)] lists call times in round order."""
    seconds = {key: np.asarray(value, dtype=np.float64) for key, value in seconds.items()}
    return ((seconds[(True, copies)] - seconds[(True, 1)])
            - (seconds[(False, copies)] - seconds[(False, 1)])) / (copies - 1)


# Every Cell the profile compiles stays referenced until the process ends.  MindSpore's graph
# parser keys the objects it resolves by id() (graph/_parse/parser.py, get_obj_id).  One DeiT-T
# run that freed its profile Cells failed to compile a later one ("The parameters number of the
# function is 3, but the number of provided arguments is 6"), as if a new Cell had been given a
# freed one's graph; with the Cells kept, the same run passed.  Compiled graphs are never freed
# anyway (see profile_copies), so keeping the Cells costs little.
_COMPILED_CELLS = []


def in_graph_ms(parts, copies: int, warmup: int, repeats: int) -> Dict[str, np.ndarray]:
    """Cost (ms) of one run of each part inside a graph (`marginal_per_round`),
    per round: parts {name: (cell, inputs, scaled)} -> {name: [repeats] ms}.
    All parts are timed in the same interleaved rounds, so their per-round
    costs can be compared (a ratio per round) despite the machine's drift.
    The subtraction removes what a graph call costs whatever it runs (launch,
    argument handling, reading the result back), which a network pays once,
    not per block."""
    calls = {}
    for name, (part, inputs, scaled) in parts.items():
        for run in (True, False):
            for n in (copies, 1):
                chained = Chained(part if run else None, n, scaled)
                _COMPILED_CELLS.append(chained)
                calls[(name, run, n)] = partial(_forward, chained, *inputs)
    timings = time_side_by_side(calls, warmup, repeats)
    return {name: 1e3 * marginal_per_round({(run, n): timings[(name, run, n)].seconds
                                            for run in (True, False) for n in (copies, 1)}, copies)
            for name in parts}


def random_block_inputs(batch_size: int, tokens: int, net, seed: int):
    """Random tensors with the shapes one block and its reduction step receive."""
    rng = np.random.default_rng(seed)
    heads = net.blocks[0].attn.num_heads
    width = net.embed_dim // heads

    def normal(*shape):
        return ms.Tensor(rng.standard_normal(shape, dtype=np.float32))

    logits = rng.standard_normal((batch_size, heads, tokens, tokens), dtype=np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return {"x": normal(batch_size, tokens, net.embed_dim),
            "size": ms.Tensor(np.ones((batch_size, tokens, 1), np.float32)),
            "source": ms.Tensor(np.zeros((1,), np.float32)), "k": normal(batch_size, heads, tokens, width),
            "v": normal(batch_size, heads, tokens, width), "probs": ms.Tensor(probs)}


PROFILE_MIN_ROUNDS = 30


def profile_copies(batch_size: int) -> int:
    """Chained runs per profile graph: 6 for small batches, where a block costs a
    few ms and more runs shrink the noise of the difference; 2 above batch 8,
    because every compiled graph keeps its memory until the process ends
    (MindSpore 2.10, CPU), about 0.5 GB per DeiT-S block at batch 64."""
    return 6 if batch_size <= 8 else 2


def profile_reduction(net: nn.Cell, method: str, batch_size: int, warmup: int, repeats: int,
                      seed: int = 0) -> Optional[dict]:
    """In-graph cost (ms, `in_graph_ms`) of the first reducing block of `net`
    and of its reduction step, timed in the same rounds, at least
    PROFILE_MIN_ROUNDS of them (the step is a difference of small times):
    quartiles of each, and of the per-round share step / block.  None if
    nothing reduces."""
    reducing = [plan for plan in net.plan if plan.r > 0]
    if not reducing:
        return None
    plan = reducing[0]
    block = net.blocks[plan.index]
    t = random_block_inputs(batch_size, plan.tokens_in, net, seed)
    rounds, copies = max(repeats, PROFILE_MIN_ROUNDS), profile_copies(batch_size)
    costs = in_graph_ms({"block": (block, (t["x"], t["size"], t["source"]), (True, True, False)),
                         "step": (ReductionStep(block), tuple(t[k] for k in ("x", "size", "source", "k", "v", "probs")),
                                  (True, True, False, True, True, True))}, copies, warmup, rounds)
    row = {"method": method, "batch_size": batch_size, "block": plan.index, "tokens_in": plan.tokens_in,
           "tokens_out": plan.tokens_out, "copies": copies, "rounds": rounds}
    for name, values in (("block_ms", costs["block"]), ("step_ms", costs["step"]),
                         ("reduction_share", costs["step"] / costs["block"])):
        q1, row[name], q3 = quartiles(values)
        row[name + "_q1_q3"] = [q1, q3]
    return row


# ---- the whole benchmark ----

def cpu_model() -> str:
    """The processor's model name (what lscpu prints), for every result: speed depends on it."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_benchmark(cfg, weights: Optional[str] = None, overrides=(), with_reduction_profile: bool = False,
                  with_ops_profile: bool = False) -> dict:
    """Benchmark the config's compared methods side by side; returns the JSON-ready result.
    with_ops_profile adds, per batch size and variant, the per-kernel profile of the whole
    forward (ppt_ms.profile_ops)."""
    bench, model = cfg["benchmark"], cfg["model"]
    onnx = bench["runtime"] == "onnxruntime"
    if onnx and (with_reduction_profile or with_ops_profile):
        raise BenchmarkError("the reduction and kernel profiles measure MindSpore graphs; use them with "
                             "benchmark.runtime mindspore")
    if onnx:  # the files are exported from the MindSpore ops, not this machine's CPU kernels
        cfg = make_config(cfg.to_dict(), [("model.cpu_kernels", False)])
    configs = variant_configs(cfg, bench["compare"], overrides)
    nets = build_variants(configs, weights or model["pretrained"])
    macs = {method: count_macs(net).total for method, net in nets.items()}

    def ratio_to_none(values, method):
        return values[method] / values["none"] if "none" in values else None

    variants = {method: {"token_reduction": dict(net.token_reduction), "tokens_per_block": net.tokens_per_block,
                         "macs_per_image": macs[method], "macs_ratio_to_none": ratio_to_none(macs, method)}
                for method, net in nets.items()}
    results, profile, ops_profiles = [], [], []
    seed = cfg["system"]["seed"]
    runtime = {"name": "mindspore", "version": ms.__version__}
    for batch_size in bench["batch_sizes"]:
        images = sample_images(batch_size, model["img_size"], seed)
        if onnx:
            calls, runtime = onnxruntime_calls(nets, images)
        elif bench["training"]:
            calls = {m: training_step_call(net, images, model["num_classes"], seed) for m, net in nets.items()}
        else:
            calls = {m: partial(_forward, net, images) for m, net in nets.items()}
        timings = time_side_by_side(calls, bench["warmup"], bench["repeats"])
        for method, timing in timings.items():
            speedup = paired_speedup(timings["none"].seconds, timing.seconds) if "none" in timings else None
            results.append({
                "batch_size": batch_size, "method": method, "compile_s": timing.first_call_s,
                "seconds": list(timing.seconds), "images_per_s": throughput(batch_size, timing.seconds),
                "ms_per_batch_median": 1e3 * float(np.median(timing.seconds)),
                "speedup_vs_none": None if speedup is None else speedup[1],
                "speedup_vs_none_q1_q3": None if speedup is None else [speedup[0], speedup[2]],
                "macs_per_image": macs[method], "macs_ratio_to_none": ratio_to_none(macs, method),
                "memory_mb": {"first_call_peak": _rounded(timing.first_call_peak_mb),
                              "first_call_retained": _rounded(timing.first_call_retained_mb),
                              "timed_calls_peak": _rounded(timing.timed_calls_peak_mb)}})
        if with_ops_profile:
            for method, call in calls.items():
                ops_profiles.append({"batch_size": batch_size, "method": method, **profile_ops(call)})
        if with_reduction_profile:
            for method, net in nets.items():
                row = profile_reduction(net, method, batch_size, bench["warmup"], bench["repeats"], seed)
                if row is not None:
                    profile.append(row)
    report = {
        "model": model["name"], "img_size": model["img_size"], "num_classes": model["num_classes"],
        "weights": weights or model["pretrained"], "runtime": runtime,
        "mode": cfg["system"]["mode"], "dtype": "float32",
        "task": "training step (forward, backward, AdamW)" if bench["training"] else "inference",
        "warmup": bench["warmup"], "repeats": bench["repeats"], "batch_sizes": list(bench["batch_sizes"]),
        "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "python": sys.version.split()[0], "mindspore": ms.__version__},
        "memory_note": MEMORY_NOTE, "variants": variants, "results": results,
        "process_peak_rss_mb": _rounded(process_peak_rss_mb())}
    if with_reduction_profile:
        report["reduction_profile"] = profile
    if with_ops_profile:
        report["ops_profile"] = ops_profiles
    return report


def write_json(report: dict, path: str):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)


def _table(header, rows) -> List[str]:
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]
    return ["  ".join(str(cell).rjust(width) for cell, width in zip(row, widths)) for row in [header] + rows]


def _optional(value, pattern):
    return "-" if value is None else pattern % value


def describe_runtime(report: dict) -> str:
    """'MindSpore 2.10.0 graph mode' or 'onnxruntime 1.32.0 (CPUExecutionProvider, 2 threads)'."""
    runtime = report.get("runtime") or {"name": "mindspore", "version": report["machine"]["mindspore"]}
    if runtime["name"] == "onnxruntime":
        return "onnxruntime %s (%s, %d threads)" % (runtime["version"], ", ".join(runtime["providers"]),
                                                    runtime["intra_op_threads"])
    return "MindSpore %s %s mode" % (runtime["version"], report["mode"])


def format_benchmark(report: dict) -> str:
    """The report as fixed-width tables (throughput; then the reduction profile if present)."""
    lines = ["%s: %s, %d px, %s, %s; weights: %s; %d warm-up calls, %d interleaved rounds; %s, %s CPUs"
             % (report["task"], report["model"], report["img_size"], describe_runtime(report), report["dtype"],
                report["weights"] or "random",
                report["warmup"], report["repeats"], report["machine"]["cpu"], report["machine"]["cpu_count"])]
    for method, variant in report["variants"].items():
        lines.append("  %-5s tokens after each block %s" % (method, variant["tokens_per_block"]))
    if report.get("isolated"):
        lines.append("each variant in its own process: vs none is a ratio of medians (not paired); peak RSS of "
                     "each process, MB: %s" % ", ".join("%s %s" % (m, _optional(p, "%.0f"))
                                                          for m, p in report["process_peak_rss_mb"].items()))
    else:
        lines.append("peak RSS of the process: %s MB" % _optional(report["process_peak_rss_mb"], "%.0f"))
    header = ("batch", "method", "img/s median", "[q1, q3]", "vs none", "[q1, q3]", "compile s", "GMACs/img",
              "MACs vs none", "peak MB 1st call", "peak MB timed")
    rows = [(r["batch_size"], r["method"], "%.1f" % r["images_per_s"]["median"],
             "[%.1f, %.1f]" % (r["images_per_s"]["q1"], r["images_per_s"]["q3"]),
             _optional(r["speedup_vs_none"], "%.2fx"),
             _optional(r["speedup_vs_none_q1_q3"] and tuple(r["speedup_vs_none_q1_q3"]), "[%.2f, %.2f]"),
             "%.1f" % r["compile_s"], "%.3f" % (r["macs_per_image"] / 1e9),
             _optional(r["macs_ratio_to_none"], "%.3f"), _optional(r["memory_mb"]["first_call_peak"], "%.0f"),
             _optional(r["memory_mb"]["timed_calls_peak"], "%.0f")) for r in report["results"]]
    lines += _table(header, rows)
    if report.get("reduction_profile"):
        first = report["reduction_profile"][0]
        lines.append("reduction step vs its whole block, cost inside a graph (per round: N chained runs minus 1 "
                     "run, minus the same for a control, / (N - 1); block and step in the same rounds; median "
                     "[q1, q3] over %d rounds; share = step / block per round)" % first["rounds"])
        header = ("batch", "method", "block", "tokens", "N", "block ms", "[q1, q3]", "step ms", "[q1, q3]", "share",
                  "[q1, q3]")
        rows = [(p["batch_size"], p["method"], p["block"], "%d->%d" % (p["tokens_in"], p["tokens_out"]), p["copies"],
                 "%.2f" % p["block_ms"], "[%.2f, %.2f]" % tuple(p["block_ms_q1_q3"]), "%.3f" % p["step_ms"],
                 "[%.3f, %.3f]" % tuple(p["step_ms_q1_q3"]), "%.1f%%" % (100 * p["reduction_share"]),
                 "[%.1f, %.1f]" % tuple(100 * v for v in p["reduction_share_q1_q3"]))
                for p in report["reduction_profile"]]
        lines += _table(header, rows)
    for batch_size in sorted({p["batch_size"] for p in report.get("ops_profile", [])}):
        lines += format_ops_profile([p for p in report["ops_profile"] if p["batch_size"] == batch_size])
    return "\n".join(lines)


OPS_PROFILE_TOP = 12


def format_ops_profile(profiles: List[dict]) -> List[str]:
    """One batch size's kernel profiles side by side: ms per call of the kernel types that
    take most time in any variant, the rest, and the time outside kernels."""
    by_type = [{k["type"]: k for k in p["kernels"]} for p in profiles]
    ranked = sorted({t for kinds in by_type for t in kinds}, key=lambda t: -max(k.get(t, {"ms": 0})["ms"]
                                                                                   for k in by_type))
    top = ranked[:OPS_PROFILE_TOP]
    lines = ["kernel profile, batch %d: ms per timed call (MindSpore profiler, %d calls; count = kernels per "
             "call)" % (profiles[0]["batch_size"], profiles[0]["calls"])]
    header = ("kernel",) + tuple("%s ms (count)" % p["method"] for p in profiles)

    def cell(kinds, name):
        kind = kinds.get(name)
        return "-" if kind is None else "%.1f (%d)" % (kind["ms"], kind["count"])
    rows = [(name,) + tuple(cell(kinds, name) for kinds in by_type) for name in top]
    rows.append(("other kernels",) + tuple("%.1f" % sum(k["ms"] for t, k in kinds.items() if t not in top)
                                           for kinds in by_type))
    rows.append(("all kernels",) + tuple("%.1f" % p["kernel_ms"] for p in profiles))
    rows.append(("outside kernels",) + tuple("%.1f" % p["outside_kernels_ms"] for p in profiles))
    rows.append(("wall, profiling",) + tuple("%.1f" % p["wall_ms"] for p in profiles))
    return lines + _table(header, rows)
