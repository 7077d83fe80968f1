"""Evaluate a checkpoint on the val split: top-1, top-5, loss, MACs and images/s.

    python tools/eval.py --config configs/quickstart.yaml --ckpt output/quickstart/step00001936.ckpt [--json out.json]

Under msrun each rank reads its shard of the folder; every rank prints the totals, rank 0 writes the JSON.
"""
import sys

from ppt_ms.cli import run_tool
from ppt_ms.config import parse_cli, summary
from ppt_ms.distributed import this_rank
from ppt_ms.evaluate import evaluate_checkpoint, format_report, write_json


def tool_arguments(parser):
    parser.add_argument("--ckpt", metavar="FILE", help="weights to evaluate (default: eval.ckpt, then "
                        "model.pretrained); timm/DeiT files or checkpoints of tools/train.py")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")


def main(argv=None) -> int:
    cfg, args = parse_cli(argv, summary(__doc__), extra=tool_arguments)

    def work():
        report = evaluate_checkpoint(cfg, args.ckpt)
        print(format_report(report))
        if args.json and this_rank() == 0:  # under msrun every rank has the same metrics
            write_json(report, args.json)
    return run_tool(work, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
