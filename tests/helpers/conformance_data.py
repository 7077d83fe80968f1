"""Where the conformance data lives: the compact set in the repository, and the full set.

The compact set (tests/data/conformance_mini) ships with every clone. The full set is
`PPT_MS_CONFORMANCE` if that is set, else ../shared/conformance beside the clone; tests
that need it skip where it is absent.
"""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MINI = ROOT / "tests" / "data" / "conformance_mini"
FULL = Path(os.environ.get("PPT_MS_CONFORMANCE", ROOT.parent / "shared" / "conformance"))
FULL_PRESENT = (FULL / "manifest.json").is_file()
