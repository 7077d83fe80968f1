"""Check that this machine's device gives the published PPT/ToMe results: conformance, a training step, msrun.

    python tools/check_device.py --device Ascend [--mode pynative] [--msrun 2]

Prints a pass/fail table; exits 1 if any check fails.
"""
import argparse
import sys

from ppt_ms.cli import run_tool
from ppt_ms.device_check import check_device, format_rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--device", required=True, choices=("CPU", "GPU", "Ascend"))
    parser.add_argument("--mode", default="graph", choices=("graph", "pynative"))
    parser.add_argument("--data", metavar="DIR", help="the compact conformance set (default: this checkout's "
                        "tests/data/conformance_mini)")
    parser.add_argument("--msrun", type=int, default=0, metavar="N", help="also run the training step on N ranks "
                        "with msrun (0: skip)")
    args = parser.parse_args(argv)
    outcome = {}

    def work():
        outcome["rows"] = check_device(args.device, args.mode, args.data, args.msrun)
        print(format_rows(outcome["rows"], args.device, args.mode))
    status = run_tool(work)
    if status == 0 and not all(row.passed for row in outcome["rows"]):
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
