"""The benchmark report as JSON and as text tables.

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
"""
from typing import List

from ..reporting import table


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
    width = max(len(method) for method in report["variants"])
    for method, variant in report["variants"].items():
        lines.append("  %-*s  tokens after each block %s" % (width, method, variant["tokens_per_block"]))
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
    lines += table(rows, header)
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
        lines += table(rows, header)
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
    return lines + table(rows, header)
