"""scripts/peer_side_by_side.py: ratios taken within each round, and the worker protocol on
the quick-start model (the PyTorch peer's worker needs torch, which tests never import)."""
import importlib.util
import sys

import pytest

from helpers.paths import QUICKSTART, ROOT

SCRIPT = str(ROOT / "scripts" / "peer_side_by_side.py")
spec = importlib.util.spec_from_file_location("peer_side_by_side", SCRIPT)
side = importlib.util.module_from_spec(spec)
spec.loader.exec_module(side)


def test_ratios_are_taken_within_each_round():
    # the machine halves its speed in round 2: the rates drift, the within-round ratios do not
    rates = {"peer": [10.0, 5.0, 10.0], "none": [11.0, 5.5, 11.0], "ppt": [15.0, 7.5, 16.5]}
    lines = side.summary(rates)
    assert lines[0].split() == ["peer", "10.00", "images/s"]
    assert "vs peer 1.100x [1.100, 1.100]" in lines[1] and "vs none" not in lines[1]
    assert "vs peer 1.500x [1.500, 1.650]" in lines[2] and "vs none 1.364x [1.364, 1.500]" in lines[2]


def test_workers_take_turns_on_the_quickstart_model():
    common = ["--config", QUICKSTART, "--batch_size", "2"]
    commands = {name: [sys.executable, SCRIPT, "--worker", "ours", "--compare", name] + common
                for name in ("none", "ppt")}
    rates = side.side_by_side(commands, rounds=2, seconds=0.05)
    assert list(rates) == ["none", "ppt"] and all(len(v) == 2 and min(v) > 0 for v in rates.values())


def test_a_worker_that_dies_is_named():
    with pytest.raises(RuntimeError, match="worker broken exited before it was ready"):
        side.side_by_side({"broken": [sys.executable, "-c", "print('no')"]}, rounds=1, seconds=0.01)
