"""Export a model with its token reduction (static shapes) and verify the file against the live network.

    python tools/export.py --config configs/ppt/ppt_deit_small.yaml --ckpt deit_small_patch16_224.pth \
        [--export.file_format MINDIR] [--export.batch_size 1] [--export.file output/ppt_deit_s.mindir]

The file name defaults to output/<model>_<method>_b<batch>.<format>. After exporting, the file is
run next to the live network on a deterministic random batch: a MindIR file reloaded by MindSpore
(mindspore.load + nn.GraphCell), an ONNX file in onnxruntime. A max |difference| above --tolerance
(1e-4) is an error (exit status 1). For ONNX files of reducing networks, PPT's pool/prune choice of
every image in every block and the merged tokens' sizes must also match.
A MindIR file takes any batch size (export.dynamic_batch null or true); an ONNX file exactly
--export.batch_size images (MindSpore 2.10 exports ONNX with static shapes only).
MindSpore Lite cannot be installed for Python 3.11 (the registry only has mindspore-lite 2.0.0 for
Python 3.7, which refuses MindIR v3), so MindIR files are checked with MindSpore itself.
AIR needs an Ascend device.
"""
import sys

from ppt_ms.cli import run_tool
from ppt_ms.config import parse_cli
from ppt_ms.export import DEFAULT_TOLERANCE, export_and_verify, format_verification
from ppt_ms.builder import setup_context


def tool_arguments(parser):
    parser.add_argument("--ckpt", metavar="FILE", help="weights to export (default: model.pretrained; "
                        "without either the weights are random)")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help="largest |file - live network| accepted (default: %(default)g)")


def main(argv=None) -> int:
    cfg, args = parse_cli(argv, __doc__, extra=tool_arguments)

    def work():
        setup_context(cfg["system"])
        print(format_verification(export_and_verify(cfg, args.ckpt, args.tolerance)))
    return run_tool(work, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
