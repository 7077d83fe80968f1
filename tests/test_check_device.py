"""tools/check_device.py on this machine's CPU (what NPU/GPU owners run on theirs): every compact
conformance case, a training step and a 2-rank msrun step pass; a wrong result is a FAIL row."""
import json
import os
import shutil

import numpy as np

from helpers.conformance_data import MINI
from helpers.paths import load_tool
from ppt_ms.device_check import ConformanceSet, check_case

MSRUN = os.environ.get("PPT_MS_SKIP_MSRUN") != "1"


def test_cpu_passes_every_check(tmp_path, capsys, graph):
    """On the training case and one ToMe case (the conformance tests run all of them)."""
    folder = tmp_path / "mini"
    shutil.copytree(MINI, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["cases"] = {name: manifest["cases"][name] for name in ("ppt_mixed", "tome_r16_dec")}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    status = load_tool("check_device").main(["--device", "CPU", "--data", str(folder)]
                                            + (["--msrun", "2"] if MSRUN else []))
    out = capsys.readouterr().out
    assert status == 0, out
    cases = sorted(manifest["cases"])
    lines = out.strip().splitlines()
    assert lines[0].startswith("device check: CPU, graph mode, MindSpore 2.10")
    assert [line.split()[1] for line in lines[1:1 + len(cases)]] == cases
    checks = len(cases) + 1 + int(MSRUN)
    assert all("  pass  " in line for line in lines[1:1 + checks])
    assert lines[-1] == "%d passed, 0 failed" % checks


def test_a_result_off_the_reference_fails_its_row(tmp_path, graph):
    folder = tmp_path / "mini"
    shutil.copytree(MINI, folder)
    golden = dict(np.load(folder / "ppt_mixed.npz"))
    golden["logits"][3, 7] += 1e-3
    golden["pooled"][0, 2] = not golden["pooled"][0, 2]
    np.savez(folder / "ppt_mixed.npz", **golden)
    row = check_case(ConformanceSet(str(folder)), "ppt_mixed")
    assert not row.passed
    assert row.detail.startswith("logits differ by 0.001") and "1 of 24 PPT choices differ" in row.detail


def test_missing_data_is_one_clear_line(tmp_path, capsys):
    assert load_tool("check_device").main(["--device", "CPU", "--data", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("error: no conformance set at %s (manifest.json missing); pass --data with the folder "
                   "tests/data/conformance_mini of a ppt_ms checkout" % tmp_path)


def test_an_installed_package_carries_its_conformance_set(tmp_path):
    """A wheel (what pip installs) holds the compact set that device_check reads, and the kernels' sources."""
    import subprocess
    import sys
    import zipfile
    from helpers.paths import ROOT
    from ppt_ms.device_check import default_data
    assert os.path.isfile(os.path.join(default_data(), "manifest.json"))
    assert os.path.relpath(default_data(), ROOT / "ppt_ms") == "conformance_mini"
    source = tmp_path / "source"  # a copy, links kept: setuptools writes build/ into the tree it builds
    shutil.copytree(ROOT / "ppt_ms", source / "ppt_ms", symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(MINI, source / "tests" / "data" / "conformance_mini")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path)], check=True)
    wheel, = tmp_path.glob("ppt_ms-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = sorted(os.listdir(default_data()))
    assert {"ppt_ms/conformance_mini/" + name for name in shipped} <= names and "weights.safetensors" in shipped
    assert "ppt_ms/formulations/cpu_layers.cc" in names
