"""The benchmark with each variant in a process of its own (`benchmark.isolate`).

Graphs MindSpore compiles keep their memory until the process ends, so in one process the
memory of every variant adds up.  Here tools/benchmark.py runs once per variant, and the
reports are merged: each variant's process peak RSS is its own.  The price: variants no
longer share rounds, so "vs none" is the ratio of the median call times, not the paired
per-round ratio, and it carries the machine's drift between the processes.
"""
import json
import os
import subprocess
import sys
import tempfile
from typing import List

import numpy as np

from .variants import BenchmarkError


def run_isolated(tool: str, argv: List[str], methods: List[str]) -> dict:
    """Run `tool` (tools/benchmark.py) with `argv` once per method, each in a new process, and merge."""
    reports = []
    with tempfile.TemporaryDirectory(prefix="ppt_ms_bench_") as folder:
        for method in methods:
            out = os.path.join(folder, method + ".json")
            run = subprocess.run([sys.executable, tool, *argv, "--benchmark.compare", method,
                                  "--benchmark.isolate", "false", "--json", out], capture_output=True, text=True)
            if run.returncode != 0:
                errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
                raise BenchmarkError("benchmark variant '%s' in its own process failed: %s" % (
                    method, (errors or run.stderr.strip().splitlines() or ["exit %d" % run.returncode])[-1]))
            with open(out) as handle:
                reports.append(json.load(handle))
    return merge_reports(reports)


def merge_reports(reports: List[dict]) -> dict:
    """One report from single-variant reports (same settings, batch sizes in the same order)."""
    merged = dict(reports[0], isolated=True, variants={}, results=[], process_peak_rss_mb={})
    for report in reports:
        method = next(iter(report["variants"]))
        merged["variants"][method] = report["variants"][method]
        merged["process_peak_rss_mb"][method] = report["process_peak_rss_mb"]
        merged["results"] += report["results"]
    for key in ("ops_profile", "reduction_profile"):
        if any(key in report for report in reports):
            merged[key] = [row for report in reports for row in report.get(key, [])]
    medians = {(r["batch_size"], r["method"]): float(np.median(r["seconds"])) for r in merged["results"]}
    for row in merged["results"]:
        none = medians.get((row["batch_size"], "none"))
        row["speedup_vs_none"] = None if none is None else none / medians[(row["batch_size"], row["method"])]
        row["speedup_vs_none_q1_q3"] = None
    order = {m: i for i, m in enumerate(merged["variants"])}
    merged["results"].sort(key=lambda r: (merged["batch_sizes"].index(r["batch_size"]), order[r["method"]]))
    return merged
