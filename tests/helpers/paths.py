"""The checkout's root, the quick-start config, and the command-line tools loaded as modules."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = str(ROOT / "configs" / "quickstart.yaml")
DATA = ROOT / "tests" / "data"


def load_tool(name: str):
    """tools/<name>.py as a module, so a test can call its main(argv)."""
    spec = importlib.util.spec_from_file_location("tool_" + name, ROOT / "tools" / (name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
