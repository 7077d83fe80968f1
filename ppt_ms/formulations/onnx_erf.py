"""Put ONNX's own Erf back into an exported file.

MindSpore 2.10's exporter has no Erf converter, so the network is exported
with `formulations.onnx.erf_rational`: Clip(u, +-ERF_CLAMP), then
x P(x^2) / Q(x^2).  ONNX Runtime runs that as ~25 elementwise passes over
the MLP's widest tensor; its Erf is one pass, exact, and part of the GELU
pattern it fuses.  `use_onnx_erf` finds each such subgraph by its clip
bounds, which nothing else in the network uses, and replaces the Div that
ends it with Erf(u); the polynomial nodes left unused are removed.  Where the
pattern is not found the rational function stays (it is within 4.1e-7 of
erf).  The caller verifies the file against the live network either way.
"""
from collections import defaultdict

from .onnx import ERF_CLAMP


def _constant(graph, name):
    """The value of a scalar initializer `name`, or None."""
    from onnx import numpy_helper
    for initializer in graph.initializer:
        if initializer.name == name:
            value = numpy_helper.to_array(initializer)
            return float(value) if value.size == 1 else None
    return None


def _is_erf_clip(graph, node) -> bool:
    if node.op_type != "Clip" or len(node.input) != 3:
        return False
    low, high = _constant(graph, node.input[1]), _constant(graph, node.input[2])
    return low is not None and high is not None and abs(low + ERF_CLAMP) < 1e-6 and abs(high - ERF_CLAMP) < 1e-6


def _remove_unused(graph):
    """Drop nodes whose outputs nothing reads, then initializers nothing reads (a graph output reads)."""
    while True:
        used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
        dead = [node for node in graph.node if not any(out in used for out in node.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    for initializer in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(initializer)


def use_onnx_erf(path: str) -> int:
    """Rewrite the ONNX file at `path` in place; returns how many erfs were replaced."""
    import onnx
    from onnx import helper
    model = onnx.load(path)
    graph = model.graph
    readers = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            readers[name].append(node)
    replaced = 0
    for clip in [node for node in graph.node if _is_erf_clip(graph, node)]:
        clipped = clip.output[0]
        ends = [div for mul in readers[clipped] if mul.op_type == "Mul"
                for div in readers[mul.output[0]] if div.op_type == "Div" and div.input[0] == mul.output[0]]
        if len(ends) != 1:
            continue
        erf_out = "%s_onnx_erf" % clipped
        graph.node.insert(list(graph.node).index(clip), helper.make_node("Erf", [clip.input[0]], [erf_out],
                                                                         name=erf_out))
        for node in graph.node:
            for i, name in enumerate(node.input):
                if name == ends[0].output[0]:
                    node.input[i] = erf_out
        replaced += 1
    if replaced:
        _remove_unused(graph)
        onnx.save(model, path)
    return replaced
