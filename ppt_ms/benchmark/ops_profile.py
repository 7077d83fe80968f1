"""Where a whole forward pass spends its time: MindSpore's profiler, summed per kernel type.

`profile_ops(calls, rounds)` profiles the variants' forward passes (already compiled) in
interleaved rounds, one call per `mindspore.Profiler` session with CPU activity, reads the
per-type table the profiler writes (FRAMEWORK/cpu_op_type_info_*.csv) and returns per
variant, per call: the wall time while profiling, the time inside kernels, what is outside
them (launch, host work, Python), and every kernel type with its count and time.  The
profiler adds a little time of its own to every kernel, so compare the shares, and take
speed from the timed rounds.
"""
import csv
import glob
import os
import tempfile
import time
from typing import Callable, Dict, List

import mindspore as ms
from mindspore.profiler import ProfilerActivity

from ..errors import PPTMSError
from .timing import rotated


class ProfileError(PPTMSError, RuntimeError):
    """The profiler ran but wrote no per-kernel table (e.g. on a device whose tables differ)."""


def _kernel_table(folder: str) -> List[dict]:
    files = glob.glob(os.path.join(folder, "**", "FRAMEWORK", "cpu_op_type_info_*.csv"), recursive=True)
    if not files:
        raise ProfileError("the MindSpore profiler wrote no cpu_op_type_info table under %s; --profile_ops reads "
                           "the CPU tables (device_target CPU)" % folder)
    rows = []
    for path in files:
        with open(path, newline="") as handle:
            rows += list(csv.DictReader(handle))
    return rows


def _profile_one_call(call: Callable[[], object]):
    """(wall seconds, {kernel type: [count, ms]}) of one call under the profiler."""
    with tempfile.TemporaryDirectory(prefix="ppt_ms_profile_") as folder:
        profiler = ms.Profiler(activities=[ProfilerActivity.CPU], output_path=folder)
        try:
            start = time.perf_counter()
            call()
            wall = time.perf_counter() - start
        finally:
            profiler.stop()
        profiler.analyse()
        rows = _kernel_table(folder)
    kinds = {}
    for row in rows:
        kind = kinds.setdefault(row["op_type"], [0, 0.0])
        kind[0] += int(row["type_occurrences"])
        kind[1] += float(row["total_compute_time"])
    return wall, kinds


def profile_ops(calls: Dict[str, Callable[[], object]], rounds: int = 3) -> Dict[str, dict]:
    """Per-call kernel profile of every variant in `calls` (name -> one compiled forward pass):
    `rounds` rounds each profile one call of every variant, the first one rotating, so a machine
    whose speed drifts slows them alike.  Per variant: {wall_ms, kernel_ms, outside_kernels_ms,
    calls, kernels: [{type, count, ms, share}] sorted by time, share of kernel_ms}, per call."""
    totals = {name: {"wall": 0.0, "kinds": {}} for name in calls}
    for round_index in range(rounds):
        for name in rotated(list(calls), round_index):
            wall, kinds = _profile_one_call(calls[name])
            totals[name]["wall"] += wall
            for kind_name, (count, kernel_ms) in kinds.items():
                kind = totals[name]["kinds"].setdefault(kind_name, [0, 0.0])
                kind[0] += count
                kind[1] += kernel_ms
    return {name: _per_call(total["wall"], total["kinds"], rounds) for name, total in totals.items()}


def _per_call(wall: float, kinds: dict, calls: int) -> dict:
    kernel_ms = sum(total for _, total in kinds.values()) / calls
    kernels = sorted(({"type": name, "count": count // calls, "ms": total / calls,
                       "share": total / calls / kernel_ms if kernel_ms else 0.0}
                      for name, (count, total) in kinds.items()), key=lambda k: -k["ms"])
    return {"calls": calls, "wall_ms": 1e3 * wall / calls, "kernel_ms": kernel_ms,
            "outside_kernels_ms": 1e3 * wall / calls - kernel_ms, "kernels": kernels}
