"""The op/dtype contract of the canonical networks (what Ascend and GPU users run), read from
MindSpore's compiled IR: none, ToMe, PPT and prune, forward and one training step, under AMP O0
and O2, in graph mode (helpers/op_contract.py compiles them in two processes of their own).

- every primitive is documented by MindSpore 2.10 for both Ascend and GPU
  (tests/data/op_platforms.yaml, written from the installed package's docstrings);
- under O2, the threshold test, the rankings, log(size) and every LayerNorm get float32 inputs.
"""
import os
import subprocess
import sys

import pytest
import yaml

from helpers.op_contract import allowlist_entry, read_ir
from helpers.paths import ROOT

ALLOWLIST = os.path.join(os.path.dirname(__file__), "data", "op_platforms.yaml")
LEVELS = ("O0", "O2")
LOW_PRECISION = {"Float16", "BFloat16"}
# primitive -> what it decides: its float inputs must be float32 at every AMP level
DECISIONS = {"LessScalar": "the PPT threshold test", "TopK": "a ranking (pruning, ToMe's matching order)",
             "ArgMaxWithValue": "ToMe's best partner", "Log": "log(size) of proportional attention"}


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    """{AMP level: read_ir of its compiled graphs}."""
    folders, runs = {}, {}
    for level in LEVELS:
        folders[level] = str(tmp_path_factory.mktemp("ir_" + level))
        env = dict(os.environ, MS_DEV_SAVE_GRAPHS="1", MS_DEV_DUMP_IR_PASSES="validate",
                   MS_DEV_SAVE_GRAPHS_PATH=folders[level], PYTHONPATH=os.path.join(str(ROOT), "tests"))
        runs[level] = subprocess.Popen([sys.executable, os.path.join(str(ROOT), "tests", "helpers", "op_contract.py"),
                                        "compile", level], env=env, cwd=folders[level],
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for level, run in runs.items():
        output, _ = run.communicate(timeout=900)
        assert run.returncode == 0, output[-3000:]
    return {level: read_ir(folder) for level, folder in folders.items()}


def test_every_primitive_is_documented_for_ascend_and_gpu(graphs):
    with open(ALLOWLIST) as f:
        allowed = yaml.safe_load(f)
    problems = []
    for level, found in graphs.items():
        for primitive, grad_of in sorted(found, key=str):
            entry = allowed.get(primitive)
            if entry is None:
                problems.append("%s (%s, %s) is not in %s; its docs: %s" % (
                    primitive, level, "backward of %s" % grad_of if grad_of else "forward",
                    os.path.basename(ALLOWLIST), allowlist_entry(primitive, grad_of)))
            elif not {"Ascend", "GPU"} <= set(entry["platforms"]):
                problems.append("%s (%s) is documented for %s only (%s)" % (
                    primitive, level, ", ".join(entry["platforms"]) or "no platform", entry["source"]))
    assert not problems, "\n".join(sorted(set(problems)))


def test_allowlist_says_what_the_installed_docs_say():
    """Each entry equals what the installed MindSpore documents (so the list cannot drift)."""
    with open(ALLOWLIST) as f:
        allowed = yaml.safe_load(f)
    for primitive, entry in allowed.items():
        if entry["source"].startswith("backward of "):
            grad_of = entry["source"].split()[2].rstrip(",")
            assert allowlist_entry(primitive, grad_of) == entry, primitive
        else:
            assert allowlist_entry(primitive, None) == entry, primitive


@pytest.mark.parametrize("level", LEVELS)
def test_decisions_are_float32(graphs, level):
    low = sorted("%s (%s) with inputs %s" % (primitive, DECISIONS[primitive], dtypes)
                 for (primitive, grad_of), seen in graphs[level].items()
                 if primitive in DECISIONS and grad_of is None
                 for dtypes in seen if LOW_PRECISION & set(dtypes))
    assert not low, "decisions in low precision under %s:\n%s" % (level, "\n".join(low))
    assert {"LessScalar", "TopK", "Log"} <= {primitive for primitive, _ in graphs[level]}


def test_layer_norm_is_float32_under_o2(graphs):
    layer_norms = [dtypes for (primitive, grad_of), seen in graphs["O2"].items()
                   if primitive in ("LayerNorm", "LayerNormGrad") for dtypes in seen]
    assert layer_norms and all(set(dtypes) == {"Float32"} for dtypes in layer_norms), layer_norms


def test_o2_runs_the_matmuls_in_float16(graphs):
    """The check above is not vacuous: O2 did cast the network."""
    assert any("Float16" in dtypes for dtypes in graphs["O2"][("MatMul", None)])
