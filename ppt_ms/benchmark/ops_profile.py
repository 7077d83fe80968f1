"""Where a whole forward pass spends its time: MindSpore's profiler, summed per kernel type.

`profile_ops(call, calls)` runs `call` (one forward pass, already compiled) `calls` times
under `mindspore.Profiler` with CPU activity, reads the per-type table the profiler writes
(FRAMEWORK/cpu_op_type_info_*.csv) and returns, per call: the wall time while profiling,
the time inside kernels, what is outside them (launch, host work, Python), and every
kernel type with its count and time.  The profiler adds a little time of its own to every
kernel, so compare the shares, and take speed from the timed rounds.
"""
import csv
import glob
import os
import tempfile
import time
from typing import Callable, List

import mindspore as ms
from mindspore.profiler import ProfilerActivity

from ..errors import PPTMSError


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


def profile_ops(call: Callable[[], object], calls: int = 3) -> dict:
    """Per-call kernel profile of `call`: {wall_ms, kernel_ms, outside_kernels_ms, calls,
    kernels: [{type, count, ms, share}] sorted by time, share of kernel_ms}."""
    with tempfile.TemporaryDirectory(prefix="ppt_ms_profile_") as folder:
        profiler = ms.Profiler(activities=[ProfilerActivity.CPU], output_path=folder)
        start = time.perf_counter()
        for _ in range(calls):
            call()
        wall = (time.perf_counter() - start) / calls
        profiler.stop()
        profiler.analyse()
        rows = _kernel_table(folder)
    totals = {}
    for row in rows:
        kind = totals.setdefault(row["op_type"], {"count": 0, "ms": 0.0})
        kind["count"] += int(row["type_occurrences"])
        kind["ms"] += float(row["total_compute_time"])
    kernel_ms = sum(kind["ms"] for kind in totals.values()) / calls
    kernels = sorted(({"type": name, "count": kind["count"] // calls, "ms": kind["ms"] / calls,
                       "share": kind["ms"] / calls / kernel_ms if kernel_ms else 0.0}
                      for name, kind in totals.items()), key=lambda k: -k["ms"])
    return {"calls": calls, "wall_ms": 1e3 * wall, "kernel_ms": kernel_ms,
            "outside_kernels_ms": 1e3 * wall - kernel_ms, "kernels": kernels}
