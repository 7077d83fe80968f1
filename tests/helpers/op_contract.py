"""Compile the canonical networks in graph mode and read, from MindSpore's saved IR, every
primitive with the dtypes of its tensor inputs (tests/test_op_contract.py).

Run as a script (MS_DEV_SAVE_GRAPHS must be set before MindSpore starts):
    MS_DEV_SAVE_GRAPHS=1 MS_DEV_DUMP_IR_PASSES=validate MS_DEV_SAVE_GRAPHS_PATH=DIR \
        python op_contract.py compile AMP_LEVEL
compiles none, ToMe, PPT and prune on vit_quickstart (3 blocks), forward and one training step, at
AMP_LEVEL, in the canonical form (formulations.prepare for a GPU, which swaps in no CPU form);
    python op_contract.py platforms DIR... > tests/data/op_platforms.yaml
writes the allowlist: every primitive in those IR folders with its documented platforms.
"""
import glob
import re
import sys
from collections import defaultdict

METHODS = {"none": {}, "tome": {"method": "tome", "r": 4},
           "ppt": {"method": "ppt", "r": 9, "layers": [1, 2], "threshold": 7e-5},
           "prune": {"method": "prune", "r": 9, "layers": [1, 2]}}
STRUCTURAL = {"Load", "TupleGetItem", "MakeTuple", "UpdateState", "Depend", "Return", "MakeRange", "ListGetItem",
              "MakeList", "Switch", "Partial", "StopGradient", "ZerosLike"}
_NODE = re.compile(r"^\s+%\d+\([^)]*\) = (?:PrimFunc_)?([A-Z]\w*)\(")
_TENSOR = re.compile(r"Tensor\[(\w+)\]")
_GRAD_OF = re.compile(r"/Grad_([A-Za-z0-9]+)/")


def read_ir(folder: str):
    """{(primitive, forward primitive or None): {tuples of its tensor inputs' dtypes}} over the
    final frontend graph of every compile in `folder` (the *_validate_*.ir files).  A node
    that MindSpore's autodiff made for the backward of primitive X (scope .../Grad_X/...)
    has forward primitive X."""
    found = defaultdict(set)
    for path in glob.glob("%s/*validate*.ir" % folder):
        with open(path) as f:
            lines = f.readlines()
        for i, line in enumerate(lines[:-1]):
            match = _NODE.match(line)
            if not match or match.group(1) in STRUCTURAL:
                continue
            scope = next((l for l in lines[i + 1:i + 4] if "Fullname with scope" in l), "")
            grad_of = _GRAD_OF.search(scope)
            key = (match.group(1), grad_of.group(1) if grad_of else None)
            found[key].add(tuple(_TENSOR.findall(lines[i + 1].split("->")[0])))
    return dict(found)


def compile_all(amp_level: str):
    import numpy as np
    import mindspore as ms
    from ppt_ms.formulations import prepare
    from ppt_ms.models import create_model
    from ppt_ms.train.loss import create_loss
    from ppt_ms.train.optimizer import create_optimizer
    from ppt_ms.train.step import TrainStep, create_loss_scaler

    ms.set_context(mode=ms.GRAPH_MODE)
    images = ms.Tensor(np.random.default_rng(0).standard_normal((2, 3, 24, 24)).astype(np.float32))
    labels = ms.Tensor(np.array([1, 3], np.int32))
    for method, section in METHODS.items():
        net = create_model("vit_quickstart", depth=3, token_reduction=section)
        net.set_train(False)
        prepare(net, "inference", "GPU", amp_level=amp_level)(images)
        net = create_model("vit_quickstart", depth=3, token_reduction=section)
        net.set_train(True)
        step = TrainStep(prepare(net, "training", "GPU", amp_level=amp_level), create_loss(False, 0.1),
                         create_optimizer(net, 0.05, 1e-3), loss_scaler=create_loss_scaler(amp_level))
        step(images, labels)


# MindSpore primitives without a docstring of their own that implement a documented public API
PUBLIC_API = {"Muls": "mindspore.ops.mul", "Divs": "mindspore.ops.div", "LessScalar": "mindspore.ops.less",
              "EqScalar": "mindspore.ops.equal", "SumExt": "mindspore.ops.sum", "MatMulExt": "mindspore.ops.matmul",
              "RemainderTensorScalar": "mindspore.ops.remainder"}
# inserted by MindSpore's compiler, not called by ppt_ms or by a public API
COMPILER_INSERTED = {"TensorMove"}
_PLATFORMS = re.compile(r"Supported Platforms:\s*\n\s*(.*)")
_REFER = re.compile(r"Refer to :(?:func|class):`([\w.]+)`")


def _platforms(obj):
    match = _PLATFORMS.search(getattr(obj, "__doc__", None) or "")
    return re.findall(r"``(\w+)``", match.group(1)) if match else None


def _resolve(path):
    import mindspore
    obj = mindspore
    for part in path.split(".")[1:]:
        obj = getattr(obj, part, None)
    return obj


def documented_platforms(primitive: str):
    """(where it is documented, [platforms]) from the installed MindSpore's docstrings: the
    primitive's own, the API its docstring refers to, or PUBLIC_API's; (None, None) if none."""
    from mindspore.ops import operations
    from mindspore.ops.auto_generate import gen_ops_prim
    for module in (operations, gen_ops_prim):
        cls = getattr(module, primitive, None)
        if cls is None:
            continue
        if _platforms(cls):
            return "mindspore.ops.%s" % primitive, _platforms(cls)
        refer = _REFER.search(cls.__doc__ or "")
        if refer and _platforms(_resolve(refer.group(1))):
            return refer.group(1), _platforms(_resolve(refer.group(1)))
    if primitive in PUBLIC_API:
        return PUBLIC_API[primitive], _platforms(_resolve(PUBLIC_API[primitive]))
    return None, None


def allowlist_entry(primitive: str, grad_of):
    """The allowlist's line for a primitive: its documented platforms; a backward-only primitive
    without docs of its own gets the platforms of the forward primitive it differentiates."""
    if primitive in COMPILER_INSERTED:
        return {"platforms": ["Ascend", "GPU", "CPU"], "source": "inserted by MindSpore's compiler"}
    source, platforms = documented_platforms(primitive)
    if platforms is None and grad_of:
        source, platforms = documented_platforms(grad_of)
        source = "backward of %s, documented as %s" % (grad_of, source)
    return {"platforms": platforms or [], "source": source or "undocumented"}


def write_allowlist(folders):
    import yaml
    found = {}
    for folder in folders:
        for (primitive, grad_of) in read_ir(folder):
            if primitive not in found or found[primitive] is None:
                found[primitive] = grad_of
    entries = {primitive: allowlist_entry(primitive, found[primitive]) for primitive in sorted(found)}
    print("# MindSpore %s's documented platforms of every primitive the canonical networks compile to,\n"
          "# forward and backward, O0 and O2 (tests/test_op_contract.py); written by\n"
          "# `python tests/helpers/op_contract.py platforms IR_DIR...` from the installed package's\n"
          "# docstrings (Supported Platforms)." % __import__("mindspore").__version__)
    print(yaml.safe_dump(entries, sort_keys=True, default_flow_style=None, width=120), end="")


if __name__ == "__main__":
    if sys.argv[1] == "compile":
        compile_all(sys.argv[2])
    else:
        write_allowlist(sys.argv[2:])
