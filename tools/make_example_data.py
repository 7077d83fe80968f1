"""Write the built-in example data set (scikit-learn's handwritten digits) as an ImageNet-style folder.

Usage: python tools/make_example_data.py --out data/digits [--image_size 24] [--val_fraction 0.2] [--seed 0]
"""
import argparse
import sys

from ppt_ms.cli import run_tool
from ppt_ms.data import dataset_summary, format_summary, make_example_dataset
from ppt_ms.data.example_digits import IMAGE_SIZE


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='data/digits', help='output folder (gets train/ and val/)')
    parser.add_argument('--image_size', type=int, default=IMAGE_SIZE, help='side of the written square PNGs')
    parser.add_argument('--val_fraction', type=float, default=0.2, help='fraction of each class put in val/')
    parser.add_argument('--seed', type=int, default=0, help='seed of the stratified split')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)

    def work():
        made = make_example_dataset(args.out, image_size=args.image_size, val_fraction=args.val_fraction,
                                    seed=args.seed)
        print(('wrote' if made['created'] else 'already complete, left untouched:') +
              f" {made['train']} train + {made['val']} val images of {made['image_size']}x{made['image_size']} px")
        print(format_summary(dataset_summary(args.out)))
    return run_tool(work)


if __name__ == '__main__':
    sys.exit(main())
