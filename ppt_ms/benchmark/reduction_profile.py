"""Reduction profile.  For the first reducing block of every reducing variant,
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
from functools import partial
from typing import Dict, Optional

import numpy as np
import mindspore as ms
from mindspore import nn, ops

from .timing import forward, quartiles, time_side_by_side

class ReductionStep(nn.Cell):
    """A block's reduction step, as the block runs it in inference (the fused
    CPU kernel if the block has one): (x, size, source, k, v, probs) -> the
    reduced (x, size, source)."""

    def __init__(self, block):
        super().__init__()
        self.block = block

    def construct(self, x, size, source, k, v, probs):
        return self.block.reducer(x, size, source, k, v, probs)[:3]


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
                calls[(name, run, n)] = partial(forward, chained, *inputs)
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
            "size": ms.Tensor(np.ones((batch_size, tokens, 1), np.int32)),
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
    costs = in_graph_ms({"block": (block, (t["x"], t["size"], t["source"]), (True, False, False)),
                         "step": (ReductionStep(block), tuple(t[k] for k in ("x", "size", "source", "k", "v", "probs")),
                                  (True, False, False, True, True, True))}, copies, warmup, rounds)
    row = {"method": method, "batch_size": batch_size, "block": plan.index, "tokens_in": plan.tokens_in,
           "tokens_out": plan.tokens_out, "copies": copies, "rounds": rounds}
    for name, values in (("block_ms", costs["block"]), ("step_ms", costs["step"]),
                         ("reduction_share", costs["step"] / costs["block"])):
        q1, row[name], q3 = quartiles(values)
        row[name + "_q1_q3"] = [q1, q3]
    return row
