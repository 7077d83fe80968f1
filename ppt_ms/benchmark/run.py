"""The whole benchmark: variants, timing, profiles, one JSON-ready report."""
import os
import platform
import sys
from functools import partial
from typing import Optional

import numpy as np
import mindspore as ms

from ..data import sample_images
from ..flops import count_macs
from ..builder import prepare_for
from .ops_profile import profile_ops
from .memory import MEMORY_NOTE, process_peak_rss_mb
from .reduction_profile import profile_reduction
from .timing import forward, onnxruntime_calls, paired_speedup, throughput, time_side_by_side, training_step_call
from .variants import BenchmarkError, build_variants, variant_configs

def _rounded(value, digits=1):
    return None if value is None else round(value, digits)


def precision(system) -> str:
    """float32, or the AMP level and its low-precision type."""
    return "float32" if system["amp_level"] == "O0" else "AMP %s, %s" % (system["amp_level"], system["amp_dtype"])


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
    forward (benchmark.ops_profile)."""
    bench, model = cfg["benchmark"], cfg["model"]
    onnx = bench["runtime"] == "onnxruntime"
    if onnx and (with_reduction_profile or with_ops_profile):
        raise BenchmarkError("the reduction and kernel profiles measure MindSpore graphs; use them with "
                             "benchmark.runtime mindspore")
    configs = variant_configs(cfg, bench["compare"], overrides)
    nets = build_variants(configs, weights or model["pretrained"])
    purpose = "export" if onnx else "training" if bench["training"] else "inference"
    runnable = {method: prepare_for(configs[method], net, purpose) for method, net in nets.items()}
    macs = {method: count_macs(net).total for method, net in nets.items()}

    def ratio_to_none(values, method):
        return values[method] / values["none"] if "none" in values else None

    variants = {method: {"token_reduction": dict(configs[method]["token_reduction"]),
                         "tokens_per_block": net.tokens_per_block,
                         "macs_per_image": macs[method], "macs_ratio_to_none": ratio_to_none(macs, method)}
                for method, net in nets.items()}
    results, profile, ops_profiles = [], [], []
    seed = cfg["system"]["seed"]
    runtime = {"name": "mindspore", "version": ms.__version__}
    for batch_size in bench["batch_sizes"]:
        images = sample_images(batch_size, model["img_size"], seed)
        if onnx:
            calls, runtime = onnxruntime_calls(runnable, images)
        elif bench["training"]:
            calls = {m: training_step_call(net, images, model["num_classes"], seed) for m, net in runnable.items()}
        else:
            calls = {m: partial(forward, net, images) for m, net in runnable.items()}
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
            for method, ops in profile_ops(calls, bench["repeats"]).items():
                ops_profiles.append({"batch_size": batch_size, "method": method, **ops})
        if with_reduction_profile:
            for method, net in nets.items():
                row = profile_reduction(net, method, batch_size, bench["warmup"], bench["repeats"], seed)
                if row is not None:
                    profile.append(row)
    report = {
        "model": model["name"], "img_size": model["img_size"], "num_classes": model["num_classes"],
        "weights": weights or model["pretrained"], "runtime": runtime,
        "mode": cfg["system"]["mode"], "dtype": precision(cfg["system"]),
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
