"""Quick start on the built-in example: digits data, train a tiny ViT, compare none / ToMe / PPT.

    python tools/quickstart.py [--config configs/quickstart.yaml] [--train.epochs 5]
"""
import os
import sys

from ppt_ms.cli import run_tool
from ppt_ms.config import parse_cli, summary
from ppt_ms.quickstart import run_quickstart

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs",
                              "quickstart.yaml")


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--config" not in argv:
        argv = ["--config", DEFAULT_CONFIG] + argv
    cfg, args = parse_cli(argv, summary(__doc__))
    return run_tool(lambda: run_quickstart(cfg), args.verbose)


if __name__ == "__main__":
    sys.exit(main())
