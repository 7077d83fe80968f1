"""Embeddings (timm's pre-logits: pooled, normed features) of a folder of images, with the config's
token reduction and without, and how close they stay (cosine similarity, no labels needed).

    python tools/embed.py --config configs/clip/vit_base_patch16_clip_224_tome.yaml --ckpt W.safetensors \
        --images DIR [--out embeddings.npz] [--json report.json]
"""
import sys

from ppt_ms.cli import run_tool
from ppt_ms.config import parse_cli, summary
from ppt_ms.embeddings import embedding_similarity, format_report, write_outputs


def tool_arguments(parser):
    parser.add_argument("--ckpt", metavar="FILE", help="weights (default: model.pretrained)")
    parser.add_argument("--images", metavar="DIR", required=True,
                        help="folder of images, read recursively (class sub-folders allowed, not needed)")
    parser.add_argument("--out", metavar="FILE", help="write the embeddings: .npz with files, reduced, unreduced")
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON")


def main(argv=None) -> int:
    cfg, args = parse_cli(argv, summary(__doc__), extra=tool_arguments)

    def work():
        report, reduced, unreduced, files = embedding_similarity(cfg, args.ckpt, args.images)
        print(format_report(report))
        write_outputs(report, reduced, unreduced, files, args.out, args.json)
    return run_tool(work, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
