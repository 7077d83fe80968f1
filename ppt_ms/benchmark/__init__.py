"""Side-by-side benchmark of token-reduction methods on one model: variants (the
compared networks), memory and timing (side by side, paired ratios), the in-graph
reduction profile, run (the whole benchmark) and report (JSON and tables)."""
from .memory import RssProbe, process_peak_rss_mb
from .reduction_profile import Chained, ReductionStep, marginal_per_round, profile_reduction, random_block_inputs
from ..reporting import write_json
from .report import format_benchmark, format_ops_profile
from .run import cpu_model, run_benchmark
from .timing import paired_speedup, throughput, time_side_by_side, training_step_call
from .variants import PAPER_SETTINGS, BenchmarkError, build_variants, copy_parameters, variant_configs

__all__ = ["BenchmarkError", "Chained", "PAPER_SETTINGS", "ReductionStep", "RssProbe", "build_variants",
           "copy_parameters", "cpu_model", "format_benchmark", "format_ops_profile", "marginal_per_round",
           "paired_speedup", "process_peak_rss_mb", "profile_reduction", "random_block_inputs", "run_benchmark",
           "throughput", "time_side_by_side", "training_step_call", "variant_configs", "write_json"]
