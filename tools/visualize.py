"""Draw token maps (which patches each token stands for after every reducing block) for a few images.

Usage: python tools/visualize.py --config configs/ppt/ppt_deit_tiny.yaml [--ckpt W] --image a.jpg [--image b.png ...]
       --out DIR [--fill mean|palette] [--title TEXT] [--columns 7] [--section.key VALUE ...]
"""
import sys

from ppt_ms.builder import setup_context
from ppt_ms.cli import run_tool
from ppt_ms.config import parse_cli, summary
from ppt_ms.visualize import FILLS, visualize


def tool_arguments(parser):
    parser.add_argument("--ckpt", help="weights (timm .pth/.safetensors or a tools/train.py checkpoint); "
                        "default: model.pretrained")
    parser.add_argument("--image", action="append", required=True, help="an image file (repeatable)")
    parser.add_argument("--out", required=True, help="folder for the PNGs (<image stem>_tokens.png)")
    parser.add_argument("--fill", choices=FILLS, default="mean",
                        help="token colour: mean colour of its patches (ToMe style) or a distinct palette colour")
    parser.add_argument("--title", default="", help="extra text under the generated title line")
    parser.add_argument("--columns", type=int, default=7, help="panels per row")


def main(argv=None):
    cfg, args = parse_cli(argv, summary(__doc__), extra=tool_arguments)

    def work():
        setup_context(cfg["system"])
        for path in visualize(cfg, args.image, args.out, weights=args.ckpt, fill=args.fill, title=args.title,
                              columns=args.columns):
            print("wrote", path)
    return run_tool(work, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
