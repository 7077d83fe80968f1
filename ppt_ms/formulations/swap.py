"""Replace cells of a network in place, keeping every parameter's full name."""
from typing import Callable, Optional

from mindspore import nn

# The cells taken out stay referenced until the process ends.  MindSpore's graph parser keys the
# Python objects it resolves by id() (graph/_parse/parser.py, get_obj_id): a freed cell's id given
# to a new cell made graph mode compile the new cell with another's graph ("The parameters number
# of the function is 5, but the number of provided arguments is 6").
_REPLACED = []


def replace_cells(net: nn.Cell, replacement: Callable[[nn.Cell], Optional[nn.Cell]]) -> int:
    """Swap every cell c of `net` (not `net` itself) for replacement(c) where that is not None;
    returns how many were swapped.  The replacements' children are not visited.  A parameter
    that the replacement takes over keeps its name; a new one is named by its place in `net`
    (MindSpore itself would prefix it with the attribute name only)."""
    names = {id(p): p.name for p in net.get_parameters()}
    found = [(path, parent, attr, child) for path, parent in net.cells_and_names()
             for attr, child in parent.name_cells().items()]
    replaced = {}
    for path, parent, attr, child in found:
        if any(path == done or path.startswith(done + ".") for done in replaced):
            continue  # inside a cell swapped already
        new = replacement(child)
        if new is None:
            continue
        prefix = "%s.%s" % (path, attr) if path else attr
        setattr(parent, attr, new)
        _REPLACED.append(child)
        replaced[prefix] = new
        for relative, param in new.parameters_and_names():
            param.name = names.get(id(param)) or "%s.%s" % (prefix, relative)
    return len(replaced)
