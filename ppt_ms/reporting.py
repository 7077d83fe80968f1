"""Output every tool shares: fixed-width text tables and JSON files."""
import json
import os
from typing import List, Optional, Sequence


def table(rows: Sequence[Sequence], header: Optional[Sequence] = None, align: str = "right") -> List[str]:
    """Lines of columns two spaces apart, each as wide as its widest cell (header first, if any);
    cells right-aligned (numbers) or left-aligned (align="left", trailing spaces dropped)."""
    lines = [[str(cell) for cell in row] for row in ([header] if header is not None else []) + list(rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    pad = str.rjust if align == "right" else str.ljust
    return ["  ".join(pad(cell, width) for cell, width in zip(line, widths)).rstrip() for line in lines]


def write_json(data, path) -> None:
    """`data` as indented JSON at `path`, parent folders created."""
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    os.makedirs(folder, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
