"""Accuracy (or embedding similarity) vs MACs vs speed over a grid of token-reduction settings;
optionally pick one for a target.

Usage: python tools/sweep.py --config X.yaml [--ckpt W]
       --grid token_reduction.r=8,13,16 token_reduction.threshold=0,7e-5,1 [--methods none,tome,ppt]
       --out DIR [--images DIR] [--target_macs G] [--target_speedup X] [--section.key VALUE ...]
Writes DIR/sweep.csv, DIR/sweep.json, DIR/accuracy_vs_macs.png, DIR/accuracy_vs_speed.png, and
DIR/sweep_progress.jsonl as each setting finishes: run again with the same arguments, a sweep skips
the settings already measured (on other weights or images it stops and says so); with
--images, the settings are scored by the cosine similarity of their embeddings to the unreduced
ones over that folder (no labels needed): DIR/similarity_vs_*.png.
"""
import logging
import os
import sys

from ppt_ms.builder import setup_context
from ppt_ms.cli import run_tool
from ppt_ms.config import eval_batch_size, parse_cli, summary
from ppt_ms.sweep import parse_grid, parse_methods, pick_setting, run_sweep, score_of, score_text, write_results
from ppt_ms.sweep.journal import FILE_NAME as JOURNAL


def tool_arguments(parser):
    parser.add_argument("--ckpt", help="weights shared by every point (default: model.pretrained)")
    parser.add_argument("--grid", nargs="+", required=True, metavar="token_reduction.KEY=V1,V2",
                        help="values to sweep; every combination is evaluated (lists: r=[8,4],[4,8])")
    parser.add_argument("--methods", help="comma-separated methods (default: none and the config's method)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--target_macs", type=float, metavar="G",
                        help="pick the most accurate setting with at most G GMACs per image")
    parser.add_argument("--target_speedup", type=float, metavar="X",
                        help="pick the most accurate setting at least X times faster than method none")
    parser.add_argument("--title", default="", help="plot title (default: model and data)")
    parser.add_argument("--images", metavar="DIR", help="score by embedding similarity over the images below DIR "
                        "(no labels needed) instead of top-1 on data.path's val split")


def main(argv=None):
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    cfg, args = parse_cli(argv, summary(__doc__), extra=tool_arguments)

    def work():
        methods = parse_methods(args.methods or "none,%s" % cfg["token_reduction"]["method"])
        grid = parse_grid(args.grid)
        setup_context(cfg["system"])
        rows = run_sweep(cfg, args.grid, methods, weights=args.ckpt, images=args.images,
                         journal_path=os.path.join(args.out, JOURNAL))
        data = args.images or cfg["data"]["path"]
        context = {"config": args.config, "weights": args.ckpt or cfg["model"]["pretrained"],
                   "model": cfg["model"]["name"], "data": data, "score": score_of(rows),
                   "batch_size": eval_batch_size(cfg), "methods": methods,
                   "grid": {k: list(v) for k, v in grid.items()},
                   "title": args.title or "%s on %s" % (cfg["model"]["name"], data)}
        for path in write_results(rows, list(grid), args.out, context):
            print("wrote", path)
        if args.target_macs is not None or args.target_speedup is not None:
            max_macs = None if args.target_macs is None else args.target_macs * 1e9
            score = score_of(rows)
            best = pick_setting(rows, max_macs=max_macs, min_speedup=args.target_speedup, score=score)
            speedup = "%.2fx" % best["speedup"] if best["speedup"] else "-"
            print("%s setting meeting the target: %s (%s, %.4f GMACs, speed-up %s)"
                  % ("most accurate" if score == "top1" else "most similar", best["label"], score_text(best),
                     best["gmacs"], speedup))
            print("use: %s" % best["flags"])
    return run_tool(work, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
