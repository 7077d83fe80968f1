"""Benchmark token-reduction methods side by side on one model and its weights (inference, float32).

    python tools/benchmark.py --config configs/ppt/ppt_deit_small.yaml --ckpt deit_small_patch16_224.pth \
        [--benchmark.batch_sizes 1 8 64] [--benchmark.compare none tome ppt] [--benchmark.repeats 10] \
        [--variant tome.r=8 --variant ppt.layers=[3,6,9]] [--profile_reduction] [--json out.json]

Variants tome-fused and ppt-fused are ToMe and PPT with token_reduction.fused_cpu_kernel (CPU: each
reduction step one C++ kernel), e.g. --benchmark.compare none tome tome-fused ppt ppt-fused.
Each method in benchmark.compare runs the same model and weights; the config's own method keeps its
token_reduction settings, the others use the papers' (ToMe r 13; PPT r 50 at blocks [3, 6, 9],
threshold 7e-5; pruning r 50 at [3, 6, 9]) unless --variant METHOD.KEY=VALUE says otherwise.
Compile time (first call) is reported apart; after benchmark.warmup calls, benchmark.repeats rounds
time the methods in turn (rotating the order), so machine noise hits all of them alike. Reported:
median images/s with quartiles, ratio to method none, MACs per image, memory (process RSS).
--profile_ops adds each variant's per-kernel profile of the whole forward (top kernels, the time outside
kernels), over benchmark.repeats rounds that each profile one call of every variant in turn.
--profile_reduction also measures the first reducing block and its reduction step, each as it costs
inside a graph (chained runs minus a control; see ppt_ms.benchmark), and the step's share of the block.
--benchmark.training true times a training step (forward, backward, AdamW) of each variant instead.
--benchmark.isolate true runs every variant in a process of its own (ppt_ms.benchmark.isolated): each
variant's memory alone, at the price of unpaired ratios.
--benchmark.data_pipeline true times the evaluation data pipeline instead of the models: benchmark.repeats
passes over data.path's val split (decode, resize, crop, normalise, batch; data.num_workers), images/s.
"""
import sys

from ppt_ms.benchmark import format_benchmark, run_benchmark, write_json
from ppt_ms.builder import setup_context
from ppt_ms.benchmark.isolated import run_isolated
from ppt_ms.benchmark.pipeline import format_pipeline, time_eval_pipeline
from ppt_ms.cli import run_tool
from ppt_ms.config import parse_cli


def tool_arguments(parser):
    parser.add_argument("--ckpt", metavar="FILE", help="weights for every variant (default: model.pretrained; "
                        "without either the weights are random, which times the same)")
    parser.add_argument("--variant", metavar="METHOD.KEY=VALUE", action="append", default=[],
                        help="token_reduction setting of one compared method, e.g. tome.r=8 (repeatable)")
    parser.add_argument("--profile_reduction", action="store_true",
                        help="also measure the reduction step's share of its block, inside a graph")
    parser.add_argument("--profile_ops", action="store_true",
                        help="also profile each variant's whole forward per kernel type (MindSpore profiler): "
                             "where the time goes, and how much is outside kernels")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")


def main(argv=None) -> int:
    cfg, args = parse_cli(argv, __doc__, extra=tool_arguments)

    def work():
        setup_context(cfg["system"])
        bench = cfg["benchmark"]
        if bench["data_pipeline"]:
            report = time_eval_pipeline(cfg, bench["repeats"])
            text = format_pipeline(report)
        else:
            if bench["isolate"]:
                report = run_isolated(__file__, argv if argv is not None else sys.argv[1:], bench["compare"])
            else:
                report = run_benchmark(cfg, args.ckpt, args.variant, args.profile_reduction, args.profile_ops)
            text = format_benchmark(report)
        print(text)
        if args.json:
            write_json(report, args.json)
            print("wrote %s" % args.json)
    return run_tool(work, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
