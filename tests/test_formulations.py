"""ppt_ms.formulations.prepare: which form each purpose, device, AMP level and machine gets,
and the one log line when a CPU-only setting cannot apply."""
import logging
import os

import pytest

from ppt_ms.builder import build_model
from ppt_ms.config import load_config
from ppt_ms.formulations import FusedReducer, cpu_form_cells, prepare
from ppt_ms.models import create_model

PPT = {"method": "ppt", "r": 9, "layers": [1, 2]}
CPU_LAYERS = ["CpuAttention", "CpuGELU", "CpuLayerNorm", "CpuPatchEmbed"]
CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs")


def prepared(purpose, **settings):
    net = create_model("vit_quickstart", token_reduction=PPT)
    return net, prepare(net, purpose, **settings)


@pytest.mark.parametrize("purpose, expected", [
    ("inference", ["CpuLayerNorm", "CpuPatchEmbed", "FoldedAttention", "FoldedMlp", "FusedReducer",
                   "InferenceLinear"]),
    ("training", CPU_LAYERS),
    ("export", [])])
def test_cpu_forms_by_purpose(cxx, purpose, expected):
    net, runnable = prepared(purpose, device="CPU", cpu_kernels=True, fused_step=True)
    assert runnable is net and cpu_form_cells(net) == sorted(expected)


def test_parameter_names_survive_the_swaps(cxx):
    before = sorted(p.name for p in create_model("vit_quickstart", token_reduction=PPT).get_parameters())
    net, _ = prepared("training", device="CPU", cpu_kernels=True)
    assert sorted(p.name for p in net.get_parameters()) == before
    net, _ = prepared("inference", device="CPU", cpu_kernels=True, fused_step=True)
    assert sorted(p.name for p in net.get_parameters()) == sorted(
        name.replace(".weight", ".weight_in_out") if name.endswith(("qkv.weight", "proj.weight", "fc1.weight",
                                                                  "fc2.weight", "head.weight")) else name
        for name in before)


@pytest.mark.parametrize("device", ["Ascend", "GPU"])
def test_other_devices_get_the_canonical_network_and_one_log_line(caplog, device):
    with caplog.at_level(logging.INFO, logger="ppt_ms.formulations"):
        net, runnable = prepared("inference", device=device, cpu_kernels=True, fused_step=True)
    assert runnable is net and cpu_form_cells(net) == []
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["model.cpu_kernels and token_reduction.fused_cpu_kernel: CPU only, skipped on %s "
                     "(MindSpore's ops run instead, with the same results)" % device]


def test_mixed_precision_skips_the_float32_kernels(caplog):
    with caplog.at_level(logging.INFO, logger="ppt_ms.formulations"):
        net, runnable = prepared("inference", device="CPU", cpu_kernels=True, amp_level="O2")
    assert cpu_form_cells(net) == [] and runnable is not net
    assert "skipped under system.amp_level O2" in caplog.text


def test_without_a_compiler_a_warning_and_the_ops(monkeypatch, caplog):
    monkeypatch.setenv("CXX", "no-such-compiler-ppt-ms")
    with caplog.at_level(logging.WARNING):
        net, _ = prepared("training", device="CPU", cpu_kernels=True)
    assert cpu_form_cells(net) == []
    assert "model.cpu_kernels: no C++ compiler (no-such-compiler-ppt-ms)" in caplog.text


def test_traced_reducers_are_not_fused(cxx):
    net = create_model("vit_quickstart", token_reduction=dict(PPT, trace_source=True))
    prepare(net, "inference", "CPU", fused_step=True)
    assert not any(isinstance(block.reducer, FusedReducer) for block in net.blocks)


def test_amp_o1_is_refused_with_the_reason():
    """MindSpore 2.10's O1 (source rewrite) raises a TypeError on the network's functions; say so up front."""
    with pytest.raises(ValueError, match="amp_level O1 is not usable with MindSpore 2.10.0: its O1 rewrites"):
        prepare(create_model("vit_quickstart"), "training", amp_level="O1")


def test_bad_purpose_and_dtype_are_refused():
    net = create_model("vit_quickstart")
    with pytest.raises(ValueError, match="purpose 'serve' is not one of inference, training, export"):
        prepare(net, "serve")
    with pytest.raises(ValueError, match="amp_dtype 'float8' is not one of float16, bfloat16"):
        prepare(net, "inference", amp_dtype="float8")


@pytest.mark.parametrize("compiler", [True, False])
def test_shipped_ppt_config_fuses_the_step_on_cpu_when_it_can(monkeypatch, caplog, compiler):
    """configs/ppt turns token_reduction.fused_cpu_kernel on; tools get the fused step on CPU with a
    compiler, and MindSpore's ops with a warning without one."""
    cfg = load_config(os.path.join(CONFIGS, "ppt", "ppt_deit_tiny.yaml"))
    assert cfg["token_reduction"]["fused_cpu_kernel"] is True
    if not compiler:
        monkeypatch.setenv("CXX", "no-such-compiler-ppt-ms")
    with caplog.at_level(logging.WARNING):
        net, _ = build_model(cfg, purpose="inference")
    assert [isinstance(block.reducer, FusedReducer) for block in net.blocks if block.reduces] == [compiler] * 3
    assert ("token_reduction.fused_cpu_kernel: no C++ compiler" in caplog.text) is not compiler
