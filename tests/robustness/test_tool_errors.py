"""The command-line tools, run as a user runs them, on settings that cannot work.

Every tool must stop with a non-zero exit status and one line "error: ..." that names the
problem, without an uncaught-exception traceback and before it writes outputs: an unusable device, an
impossible token plan, a corrupt image, a file that is no checkpoint, a missing checkpoint, a bad config key.
The tools run in subprocesses (a failed device switch must not leak into the test process), two at a time.
"""
import io
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ppt_ms.checkpoint import save_checkpoint_atomic
from ppt_ms.models import create_model
from helpers.paths import QUICKSTART, ROOT

ASCEND = ["--system.device_target", "Ascend"]


@dataclass
class ToolRun:
    returncode: int
    stderr: str
    outputs: Path  # a folder the tool was told to write into

    def error_lines(self):
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]

    def died_uncaught(self):
        """A Python traceback reaching the tool's top level (MindSpore's own worker stacks do not)."""
        return "in <module>" in self.stderr or "in main" in self.stderr

    def describe(self):
        return "exit %d, stderr ends:\n%s" % (self.returncode, "\n".join(self.stderr.splitlines()[-12:]))


def write_inputs(base: Path):
    """A vit_quickstart checkpoint, one image, and a 2-class val folder holding a truncated JPEG."""
    weights = base / "quickstart.ckpt"
    save_checkpoint_atomic(create_model("vit_quickstart"), weights)
    image = base / "digit.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(image)
    corrupt = base / "corrupt"
    (corrupt / "val" / "a").mkdir(parents=True)
    (corrupt / "val" / "b").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(corrupt / "val" / "a" / "0.jpg")
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, format="JPEG")
    (corrupt / "val" / "b" / "cut.jpg").write_bytes(buffer.getvalue()[:len(buffer.getvalue()) // 2])
    return weights, image, corrupt


CONFIG_TOOLS = ("eval", "train", "benchmark", "export", "sweep", "visualize", "quickstart")
CKPT_TOOLS = ("eval", "benchmark", "export", "sweep", "visualize")


def invocations(base: Path):
    """case name -> (tool, arguments); every case writes (if at all) below base/<case>/out."""
    weights, image, corrupt = write_inputs(base)
    bad_config = base / "bad.yaml"
    bad_config.write_text("model:\n  nmae: vit_quickstart\n")
    readable = base / "readable"  # the sweep reads its data before the weights
    for label in ("a", "b"):
        (readable / "val" / label).mkdir(parents=True)
        Image.open(image).save(readable / "val" / label / "0.png")
    # relative "out": in the case's folder
    required = {"sweep": ["--grid", "token_reduction.r=4", "--out", "out"],
                "visualize": ["--image", str(image), "--out", "out"]}
    ckpt_tools = {"eval": [], "benchmark": ["--benchmark.batch_sizes", "1"], "export": [],
                  "sweep": required["sweep"] + ["--data.path", str(readable), "--model.num_classes", "2"],
                  "visualize": required["visualize"]}

    def out(case, name=""):
        return str(base / case / "out" / name)

    return {
        "device-eval": ("eval", ["--ckpt", str(weights)] + ASCEND),
        "device-train": ("train", ["--train.output_dir", out("device-train")] + ASCEND),
        "device-benchmark": ("benchmark", ["--json", out("device-benchmark", "b.json")] + ASCEND),
        "device-export": ("export", ["--export.file", out("device-export", "m.mindir")] + ASCEND),
        "device-sweep": ("sweep", ["--grid", "token_reduction.r=4,8", "--out", out("device-sweep")] + ASCEND),
        "device-visualize": ("visualize", ["--image", str(image), "--out", out("device-visualize")] + ASCEND),
        "device-quickstart": ("quickstart", ["--data.path", str(base / "digits"),
                                             "--train.output_dir", out("device-quickstart")] + ASCEND),
        "eval-r-too-big": ("eval", ["--ckpt", str(weights), "--token_reduction.r", "20"]),
        "train-r-too-big-data-missing": ("train", ["--token_reduction.r", "40", "--data.path", str(base / "absent"),
                                                   "--train.output_dir", out("train-r-too-big-data-missing")]),
        "eval-corrupt-jpeg": ("eval", ["--ckpt", str(weights), "--data.path", str(corrupt),
                                       "--model.num_classes", "2", "--data.num_workers", "1"]),
        **{"bad-ckpt-" + tool: (tool, ["--ckpt", str(image)] + extra) for tool, extra in ckpt_tools.items()},
        "bad-ckpt-train": ("train", ["--train.finetune", str(image), "--train.output_dir", out("bad-ckpt-train")]),
        **{"missing-ckpt-" + tool: (tool, ["--ckpt", str(base / "absent.ckpt")] + extra)
           for tool, extra in ckpt_tools.items()},
        **{"bad-config-" + tool: (tool, ["--config", str(bad_config)] + required.get(tool, []))
           for tool in CONFIG_TOOLS},
    }


def run_tool(base: Path, case: str, tool: str, arguments) -> ToolRun:
    (base / case).mkdir(exist_ok=True)
    config = [] if "--config" in arguments else ["--config", QUICKSTART]
    command = [sys.executable, str(ROOT / "tools" / (tool + ".py"))] + config + list(arguments)
    done = subprocess.run(command, cwd=base / case, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          timeout=600)
    return ToolRun(done.returncode, done.stderr, base / case / "out")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """case -> ToolRun, two at a time (one per core; more only slows every MindSpore start-up)."""
    base = tmp_path_factory.mktemp("tools")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {case: pool.submit(run_tool, base, case, tool, arguments)
                   for case, (tool, arguments) in invocations(base).items()}
        return {case: future.result() for case, future in futures.items()}


@pytest.mark.parametrize("tool", [
    "eval",
    "train",
    "benchmark",
    "export",
    "sweep",
    "visualize",
    "quickstart",
])
def test_unusable_device_target_is_one_error_line_before_any_output(runs, tool):
    run = runs["device-" + tool]
    assert run.returncode != 0, run.describe()
    assert not run.died_uncaught(), run.describe()
    errors = run.error_lines()
    assert len(errors) == 1 and "system.device_target=Ascend is not usable here" in errors[0], run.describe()
    assert not run.outputs.exists() or not any(run.outputs.iterdir())


def test_r_removing_more_tokens_than_exist_stops_eval_before_loading_data(runs):
    run = runs["eval-r-too-big"]
    assert run.returncode == 1 and not run.died_uncaught(), run.describe()
    assert run.error_lines() == ["error: token_reduction.r asks block 2 to remove 20 tokens but it only has 18 "
                                 "besides the 1 protected token(s); lower r or use fewer/earlier layers"]


def test_train_reports_an_impossible_token_plan_before_touching_the_data(runs):
    """The data folder is missing too: the token plan must be judged first (scanning ImageNet's train split
    takes minutes)."""
    run = runs["train-r-too-big-data-missing"]
    assert run.returncode == 1 and not run.died_uncaught(), run.describe()
    assert len(run.error_lines()) == 1 and "token_reduction.r" in run.error_lines()[0], run.describe()


def test_corrupt_image_during_evaluation_is_a_clean_error_naming_the_file(runs):
    run = runs["eval-corrupt-jpeg"]
    assert run.returncode != 0, run.describe()
    assert not run.died_uncaught(), run.describe()
    assert any("cut.jpg" in line for line in run.error_lines()), run.describe()


@pytest.mark.parametrize("tool", list(CKPT_TOOLS) + ["train"])
def test_a_file_that_is_no_checkpoint_is_one_error_line_naming_it(runs, tool):
    run = runs["bad-ckpt-" + tool]
    assert run.returncode == 1 and not run.died_uncaught(), run.describe()
    assert len(run.error_lines()) == 1 and "digit.png" in run.error_lines()[0], run.describe()


@pytest.mark.parametrize("tool", list(CKPT_TOOLS))
def test_a_missing_checkpoint_is_one_error_line_naming_it(runs, tool):
    run = runs["missing-ckpt-" + tool]
    assert run.returncode == 1 and not run.died_uncaught(), run.describe()
    assert len(run.error_lines()) == 1 and "absent.ckpt" in run.error_lines()[0], run.describe()


@pytest.mark.parametrize("tool", CONFIG_TOOLS)
def test_a_bad_config_key_is_one_error_line_naming_it(runs, tool):
    """As argparse reports usage errors: '<tool>.py: error: ...', exit status 2."""
    run = runs["bad-config-" + tool]
    assert run.returncode == 2 and not run.died_uncaught(), run.describe()
    lines = [line for line in run.stderr.splitlines() if ": error: " in line]
    assert len(lines) == 1 and "unknown config key 'model.nmae'" in lines[0], run.describe()
