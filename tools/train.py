"""Train (or fine-tune) a ViT/DeiT with token reduction from a YAML config.

    python tools/train.py --config configs/quickstart.yaml [--train.epochs 3] [--set train.resume=auto]
    msrun --worker_num=2 --local_worker_num=2 --master_addr=127.0.0.1 --master_port=8118 --join=True \
          --log_dir=output/msrun tools/train.py --config configs/quickstart.yaml
"""
import sys

from ppt_ms.cli import run_tool
from ppt_ms.config import parse_cli, summary
from ppt_ms.train import train


def tool_arguments(parser):
    parser.add_argument("--max_steps", type=int, metavar="N",
                        help="stop right after global step N without saving, as if killed there (for tests)")


def main(argv=None) -> int:
    cfg, args = parse_cli(argv, summary(__doc__), extra=tool_arguments)
    return run_tool(lambda: train(cfg, max_steps=args.max_steps), args.verbose)


if __name__ == "__main__":
    sys.exit(main())
