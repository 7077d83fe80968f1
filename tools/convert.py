"""Convert a timm/DeiT checkpoint (.pth/.pt/.bin, .safetensors, .npz, .ckpt) to a MindSpore .ckpt.

    python tools/convert.py --src deit_small_patch16_224.pth --dst deit_small.ckpt --model deit_small_patch16_224
"""
import argparse
import sys

from ppt_ms.checkpoint import convert_checkpoint
from ppt_ms.cli import run_tool


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", required=True, help="checkpoint to read (any supported format)")
    parser.add_argument("--dst", required=True, help="MindSpore checkpoint to write (.ckpt)")
    parser.add_argument("--model", help="ppt_ms model name; if given, the weights are loaded into it before saving")
    parser.add_argument("--num_classes", type=int, help="classes of --model (a different head is skipped)")
    parser.add_argument("--img_size", type=int, help="input size of --model (pos_embed is resized to fit)")
    parser.add_argument("--use_ema", action="store_true", help="take the EMA weights of a training checkpoint")
    parser.add_argument("--verbose", action="store_true", help="after an error, print everything it knows "
                        "(e.g. every key of a checkpoint that does not fit)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    def work():
        summary = convert_checkpoint(args.src, args.dst, args.model, args.num_classes, args.img_size, args.use_ema)
        print("\n".join(summary.lines()))
    return run_tool(work, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
