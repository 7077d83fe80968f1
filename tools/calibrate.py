"""Calibrate the token reduction to a budget on unlabelled images: the schedule within a MACs budget
(or measured speed-up) whose outputs stay closest to the unreduced network's.

    python tools/calibrate.py --config configs/tome/tome_deit_small.yaml --ckpt deit_small.ckpt \
        --images photos/ --budget.macs 0.6 --out calibrated/
    python tools/calibrate.py ... --budget.speedup 1.4 --budget.batch_size 64

Writes OUT/config.yaml (the config with the calibrated token_reduction: every tool reads it),
OUT/report.json and OUT/divergence_vs_macs.png; OUT/calibration_progress.jsonl lets a killed run
resume.  --token_reduction.method chooses what is calibrated (tome, ppt or prune).
"""
import sys

from ppt_ms.calibrate import calibrate
from ppt_ms.cli import run_tool
from ppt_ms.config import parse_cli, summary


def tool_arguments(parser):
    parser.add_argument("--ckpt", metavar="FILE", help="weights (default: model.pretrained)")
    parser.add_argument("--images", metavar="DIR", required=True,
                        help="unlabelled images (a folder, read recursively, or one file): every fourth is held out")
    parser.add_argument("--out", metavar="DIR", required=True, help="output folder")


def main(argv=None) -> int:
    cfg, args = parse_cli(argv, summary(__doc__), extra=tool_arguments)

    def work():
        report = calibrate(cfg, args.ckpt, args.images, args.out)
        chosen = report["chosen"]
        print("calibrated %s: %s, MACs %.3f of unreduced (%.3f G), held-out %s" % (
            report["method"], chosen["schedule"], chosen["macs_fraction"], chosen["gmacs"],
            ", ".join("%s %.5f" % (k, v) for k, v in chosen["held_out"].items())))
        for name, entry in report["baselines"].items():
            print("  %s: %s, MACs %.3f, held-out %s" % (name, entry["schedule"], entry["macs_fraction"],
                                                       ", ".join("%s %.5f" % (k, v)
                                                                 for k, v in entry["held_out"].items())))
        if report["speed"]:
            print("measured speed-up %.2fx [%.2f, %.2f] at batch %d" % (
                report["speed"]["median"], report["speed"]["q1"], report["speed"]["q3"], report["speed"]["batch_size"]))
        print("wrote %s/config.yaml, report.json, divergence_vs_macs.png" % args.out)
    return run_tool(work, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
